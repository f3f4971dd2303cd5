"""Model cards: the default text is byte-identical to the released checkpoints' training text; cards are data."""

import hashlib
import json

import pytest

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import labels
from vila_m3_core.experts.cards import DEFAULT_CARD_DIR, format_valid_args, load_cards, render_model_cards
from vila_m3_core.experts.parsing import ParseStatus, parse_expert_call

# agent_protocol.md §2.2: the check values of the complete string.
REFERENCE_SHA256 = "c0e10e631e87a7da0873be4f94e5aa560529f751638016cb37347ebd3a6945b6"
REFERENCE_VISTA3D_ARGS = (
    "'everything', 'hepatic tumor', 'pancreatic tumor', 'lung tumor', 'bone lesion', 'organs', 'cardiovascular', "
    "'gastrointestinal', 'skeleton', or 'muscles'"
)


def test_default_cards_are_byte_identical_to_the_reference():
    text = render_model_cards()
    data = text.encode("utf-8")
    assert len(data) == 1373
    assert text.count("\n") == 6 and text.endswith(".\n")
    assert hashlib.sha256(data).hexdigest() == REFERENCE_SHA256
    lines = text.splitlines()
    assert lines[0] == "Here is a list of available expert models:"
    assert [line.split(">")[0] + ">" for line in lines[1:5]] == [
        "<BRATS(args)>",
        "<VISTA3D(args)>",
        "<VISTA2D(args)>",
        "<CXR(args)>",
    ]
    assert lines[2].endswith("Valid args are: " + REFERENCE_VISTA3D_ARGS)


def test_card_order_and_runners():
    cards = load_cards()
    assert cards.names() == ["BRATS", "VISTA3D", "VISTA2D", "CXR"]
    assert cards.get("vista2d").runner is None  # advertised, never implemented (reference)
    assert cards.get("CXR").runner == "vila_m3_core.experts.cxr"
    assert render_model_cards(cards) == render_model_cards(list(cards.cards))


def test_vista3d_card_accepts_exactly_the_label_groups():
    # the card (prompt data) and the expert's label groups must not drift apart
    spec = load_cards().get("VISTA3D").arg_spec()
    assert set(spec.accepted_args) == set(labels.group_names())
    assert spec.default_args == "everything"


@pytest.mark.parametrize(
    ("args", "expected"),
    [(None, "None"), ([], "None"), (["a"], "'a'"), (["a", "b"], "'a' or 'b'"), (["a", "b", "c"], "'a', 'b', or 'c'")],
)
def test_format_valid_args(args, expected):
    assert format_valid_args(args) == expected


def _write_card(folder, name, **extra):
    card = {
        "name": name,
        "modality": "ultrasound",
        "task": "classification",
        "overview": "a test expert",
        "accuracy": "n/a",
        "valid_args": None,
        "runner": "tests.agent.some_runner",
        **extra,
    }
    (folder / f"{name.lower()}.json").write_text(json.dumps(card), encoding="utf-8")


def test_user_adds_an_expert_by_adding_a_card(tmp_path):
    _write_card(tmp_path, "ECHO", valid_args=["heart", "valves"], default_args="heart")
    cards = load_cards([DEFAULT_CARD_DIR, tmp_path])
    assert cards.names() == ["BRATS", "VISTA3D", "VISTA2D", "CXR", "ECHO"]
    text = render_model_cards(cards)
    assert text.splitlines()[5] == (
        "<ECHO(args)> Modality: ultrasound, Task: classification, Overview: a test expert, Accuracy: n/a, "
        "Valid args are: 'heart' or 'valves'"
    )
    assert text.endswith("Give the model <NAME(args)> when selecting a suitable expert model.\n")
    result = parse_expert_call("<ECHO(Valves)>", cards.cards)
    assert result.status is ParseStatus.CALL and result.call.args == "valves"


def test_yaml_card(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"header": "H", "footer": "F", "order": []}))
    (tmp_path / "sam.yaml").write_text(
        "name: SAM\nmodality: any\ntask: segmentation\noverview: o\naccuracy: a\nvalid_args: null\nrunner: null\n"
    )
    assert render_model_cards(load_cards([tmp_path])) == (
        "H\n<SAM(args)> Modality: any, Task: segmentation, Overview: o, Accuracy: a, Valid args are: None\nF\n"
    )


def test_card_env_var_adds_folders(tmp_path, monkeypatch):
    _write_card(tmp_path, "ECHO")
    monkeypatch.setenv("VILA_M3_CARD_DIRS", str(tmp_path))
    assert load_cards().names()[-1] == "ECHO"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "X"}', "lacks the text field"),
        ("[1, 2]", "one mapping"),
        ("{not json", "not valid JSON"),
        (
            '{"name": "X", "modality": "m", "task": "t", "overview": "o", "accuracy": "a", "valid_args": ["a"]}',
            "needs default_args",
        ),
    ],
)
def test_bad_cards_are_clear_errors(tmp_path, content, message):
    (tmp_path / "index.json").write_text('{"header": "H", "footer": "F", "order": []}')
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(VilaM3Error, match=message):
        load_cards([tmp_path])


def test_missing_folder_and_index(tmp_path):
    with pytest.raises(VilaM3Error, match="does not exist"):
        load_cards([tmp_path / "nope"])
    with pytest.raises(VilaM3Error, match="index.json"):
        load_cards([tmp_path])
