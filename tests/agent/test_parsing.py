"""The expert-call parser: reference behaviour, the added tolerance, structured problems, and a fuzz test."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vila_m3_core.experts.cards import load_cards
from vila_m3_core.experts.parsing import ArgSpec, ParseStatus, normalize_argument, parse_expert_call

CARDS = load_cards().cards


def parse(text, **kwargs):
    return parse_expert_call(text, CARDS, **kwargs)


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        # the trained phrasings (agent_protocol.md §1.1)
        ("This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. ", "VISTA3D", "hepatic tumor"),
        ("This looks like an chest x-ray. Let me first trigger <CXR()>.", "CXR", None),
        ("I segmented the entire image using <VISTA3D(everything)>.", "VISTA3D", "everything"),
        ("This looks like an MRI image sequence. Let me first trigger <BRATS()>.", "BRATS", None),
        ("I segmented any brain tumors using <BRATS()>.", "BRATS", None),
        # <VISTA3D> and <VISTA3D()> mean everything (reference)
        ("<VISTA3D>", "VISTA3D", "everything"),
        ("<VISTA3D()>", "VISTA3D", "everything"),
        ("<VISTA3D(hepatoma)>", "VISTA3D", "hepatoma"),  # accepted, not on the card (reference)
        # tolerance the reference lacked: quotes, spaces, case
        ("<VISTA3D('organs')>", "VISTA3D", "organs"),
        ('<VISTA3D("lung tumor")>', "VISTA3D", "lung tumor"),
        ("<VISTA3D( Hepatic  Tumor )>", "VISTA3D", "hepatic tumor"),
        ("< VISTA3D (\u2018bone lesion\u2019) >", "VISTA3D", "bone lesion"),
        ("<vista3d(muscles)>", "VISTA3D", "muscles"),
        ("<VISTA3D(hepatic_tumor)>", "VISTA3D", "hepatic tumor"),
        ("<cxr()>", "CXR", None),
        ("<CXR(args)>", "CXR", None),
        ("<VISTA2D()>", "VISTA2D", None),
    ],
)
def test_calls(text, name, args):
    result = parse(text)
    assert result.status is ParseStatus.CALL, result
    assert (result.call.name, result.call.args) == (name, args)
    assert result.call.raw in text
    assert result.warnings == []


@pytest.mark.parametrize(
    ("text", "args", "warning"),
    [
        ("<VISTA3D(hepatic tumor>", "hepatic tumor", "missing ')'"),
        ("<trigger VISTA3D(organs)>", "organs", "text around the expert name"),
        ("<VISTA3D organs>", "organs", "text around the expert name"),
    ],
)
def test_tolerated_with_a_warning(text, args, warning):
    result = parse(text)
    assert result.status is ParseStatus.CALL and result.call.args == args
    assert any(warning in item for item in result.warnings)


def test_argument_to_an_expert_without_arguments_is_reported_not_dropped():
    result = parse("<CXR(lungs)>")
    assert result.status is ParseStatus.CALL and result.call.args is None
    assert result.warnings == ["CXR takes no arguments; ignored 'lungs'"]


@pytest.mark.parametrize("text", ["", "yes", "There is no tumor.", "a < b and c > d", "<image>", "<br> x", "<b>x</b>"])
def test_no_call(text):
    result = parse(text)
    assert result.status is ParseStatus.NO_CALL and result.call is None and not result.is_problem


def test_unknown_expert():
    result = parse("Let me use <SAM(liver)>.")
    assert result.status is ParseStatus.UNKNOWN_EXPERT and result.is_problem
    assert "'SAM'" in result.message and "<VISTA3D>" in result.message


def test_unknown_argument_lists_the_valid_ones():
    result = parse("<VISTA3D(liver)>")
    assert result.status is ParseStatus.UNKNOWN_ARGUMENT
    assert result.call.name == "VISTA3D" and result.call.args == "liver"
    assert "'liver' is not accepted by the VISTA3D expert model" in result.message
    assert "'hepatic tumor'" in result.message


def test_several_arguments():
    result = parse("<VISTA3D(liver)(spleen)>")
    assert result.status is ParseStatus.MULTIPLE_ARGUMENTS and "one argument per call" in result.message


def test_several_tags_reference_mode_and_relaxed_mode():
    # reference: exactly one <...> in the whole output, so a stray <image> disables the call; we say so
    two = "<image> Let me trigger <CXR()>."
    result = parse(two)
    assert result.status is ParseStatus.MULTIPLE_TAGS and result.tags == ["<image>", "<CXR()>"]
    relaxed = parse(two, single_tag=False)
    assert relaxed.status is ParseStatus.CALL and relaxed.call.name == "CXR"
    both = parse("<CXR()> then <VISTA3D(organs)>", single_tag=False)
    assert both.status is ParseStatus.MULTIPLE_TAGS


def test_bare_names_accept_any_argument_and_to_dict_is_plain():
    result = parse_expert_call("<ECHO(Left Ventricle)>", ["ECHO"])
    assert result.call.args == "left ventricle"
    assert result.to_dict() == {
        "status": "call",
        "call": {"name": "ECHO", "args": "left ventricle", "raw": "<ECHO(Left Ventricle)>"},
        "tags": ["<ECHO(Left Ventricle)>"],
        "message": "",
        "warnings": [],
    }


def test_normalize_argument():
    assert normalize_argument(" \"'Lung   Tumor'\" ") == "lung tumor"
    assert normalize_argument("''") == ""


# --------------------------------------------------------------------------------------------- fuzz
SPECS = [card.arg_spec() for card in CARDS] + [ArgSpec("ANY")]
_alphabet = st.sampled_from(list("<>()'\" \n\t_-.,:aAxXVISTA3DCRB\u2019\u201c\x00é€"))
_pieces = st.sampled_from(
    ["<", ">", "(", ")", "VISTA3D", "CXR", "BRATS", "vista2d", "ANY", "organs", "'", '"', " ", "image", "\n", "args"]
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), st.lists(st.one_of(_pieces, _alphabet), max_size=30).map("".join)))
def test_never_raises_and_result_is_consistent(text):
    for single_tag in (True, False):
        result = parse_expert_call(text, SPECS, single_tag=single_tag)
        assert isinstance(result.status, ParseStatus)
        assert (result.call is not None) == (result.status in (ParseStatus.CALL, ParseStatus.UNKNOWN_ARGUMENT))
        if result.is_problem:
            assert result.message
        if result.call is not None:
            assert result.call.raw in text
            assert result.call.name in {spec.name for spec in SPECS}
        for tag in result.tags:
            assert tag in text
        result.to_dict()


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(load_cards().get("VISTA3D").valid_args), st.sampled_from(["", " ", "'", '"']), st.booleans())
def test_every_card_argument_parses_with_any_quoting_and_case(arg, quote, upper):
    written = arg.upper() if upper else arg
    result = parse(f"Let me trigger <VISTA3D({quote}{written}{quote})>. ")
    assert result.status is ParseStatus.CALL and result.call.args == arg


def test_default_known_experts_are_the_cards():
    assert parse_expert_call("<VISTA3D(Organs)>").call.args == "organs"
    assert parse_expert_call("<VISTA3D(liver)>").status is ParseStatus.UNKNOWN_ARGUMENT
