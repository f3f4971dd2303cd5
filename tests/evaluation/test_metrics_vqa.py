"""VQA-RAD/SLAKE, PathVQA and MIMIC-VQA metrics against hand-computed cases."""

import pickle

import pytest

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.metrics.mimicvqa import MimicVqaItem, mimicvqa_scores, normalize_answer, token_f1
from vila_m3_core.evaluation.metrics.pathvqa import load_pathvqa_pickle, pathvqa_scores
from vila_m3_core.evaluation.metrics.vqa import closed_or_open, exact_match, vqa_scores


def test_exact_match_is_strip_lower_only():
    assert exact_match("  Yes ", "yes")
    assert not exact_match("yes.", "yes")  # no punctuation removal in the reference
    assert not exact_match("the left lung", "left lung")


def test_vqa_scores_hand_computed():
    refs = {"1": "yes", "2": "no", "3": "left lung", "4": "brain", "5": "yes"}
    preds = {"1": "Yes", "2": "yes", "3": "the left lung", "4": "Brain "}  # "5" missing -> wrong
    types = {"1": "CLOSED", "2": "CLOSED", "3": "OPEN", "4": "OPEN", "5": "CLOSED"}
    out = vqa_scores(refs, preds, types)
    assert out["accuracy"] == pytest.approx(2 / 5)
    assert out["closed_accuracy"] == pytest.approx(1 / 3)
    assert out["open_exact_match"] == pytest.approx(1 / 2)
    # open recall: "left lung" fully recalled by "the left lung" (articles dropped), "brain" recalled
    assert out["open_recall"] == pytest.approx(1.0)
    assert (out["n"], out["n_closed"], out["n_open"], out["n_missing"]) == (5, 3, 2, 1)


def test_closed_or_open_falls_back_to_yes_no_answer():
    assert closed_or_open("CLOSED", "left") == "closed"
    assert closed_or_open("yes/no", "x") == "closed"
    assert closed_or_open("OPEN", "yes") == "open"
    assert closed_or_open(None, "No") == "closed"
    assert closed_or_open(None, "nodule") == "open"  # not a substring test as the reference's notebook


def test_pathvqa_joins_on_question_id_from_pickle(tmp_path):
    items = [
        {"question_id": 101, "answer_type": "yes/no", "label": {"Yes": 1}},
        {"question_id": 102, "answer_type": "yes/no", "label": {"no": 1}},
        {"question_id": 103, "answer_type": "other", "label": {"mitosis": 1}},
        {"question_id": 104, "answer_type": "yes/no", "label": {"yes": 1}},
    ]
    path = tmp_path / "test_vqa.pkl"
    path.write_bytes(pickle.dumps(items))
    refs = load_pathvqa_pickle(path)
    assert refs == {"101": "yes", "102": "no", "104": "yes"}
    out = pathvqa_scores(refs, {"101": "yes", "102": "No", "103": "mitosis", "999": "yes"})
    assert out == {"accuracy": pytest.approx(2 / 3), "n": 3, "n_missing": 1}


def test_pathvqa_bad_pickle_is_a_clear_error(tmp_path):
    with pytest.raises(VilaM3Error, match="not found"):
        load_pathvqa_pickle(tmp_path / "missing.pkl")
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps([{"qid": 1}]))
    with pytest.raises(VilaM3Error, match="UCSD"):
        load_pathvqa_pickle(path)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Yes.", "yes"),
        ("The Left Lung", "left lung"),
        ("two nodules", "2 nodules"),
        ("none", "0"),
        ("dont know", "don't know"),
        ("left-sided effusion", "left sided effusion"),  # "-" not next to a space: replaced by a space
        ("pa - view", "pa view"),  # next to a space: deleted
        ("1,000 ml", "1000 ml"),  # digit,digit: punctuation deleted, then commas dropped
        ("grade 1.5", "grade 1.5"),  # a period before a digit stays
        ("grade 5.", "grade 5"),  # the reference's lookbehind typo removes this period
        ("a (small) effusion", "small effusion"),
        ("lungs; heart", "lungs heart"),
    ],
)
def test_mimicvqa_normalisation(raw, normalised):
    assert normalize_answer(raw.lower()) == normalised


def test_token_f1_counts_prediction_occurrences():
    scores = token_f1("left left lung", "left lower lung")
    # tp = 3 (prediction's counts of shared words), fp = 0, fn = 1 ("lower")
    assert scores.precision == pytest.approx(1.0)
    assert scores.recall == pytest.approx(3 / 4)
    assert scores.f1 == pytest.approx(2 * 0.75 / 1.75)
    assert token_f1("", "x") == token_f1("x", "") == token_f1("a", "b")
    assert token_f1("a", "b").f1 == 0.0


def test_mimicvqa_aggregates_hand_computed():
    items = [
        MimicVqaItem("presence", "closed", "yes", "Yes."),
        MimicVqaItem("presence", "closed", "no", "yes"),
        MimicVqaItem("presence", "open", "left lung", "left lung"),
        MimicVqaItem("view", "closed", "pa", "Assistant: PA"),
        MimicVqaItem("location", "open", "left lower lobe", "left lobe"),
    ]
    out = mimicvqa_scores(items)
    assert out["per_type"]["presence"]["closed"] == pytest.approx(0.5)
    assert out["per_type"]["view"]["closed"] == pytest.approx(1.0)
    assert out["per_type"]["location"]["open"] == pytest.approx(2 / 3)
    assert out["avg_closed"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["wavg_closed"] == pytest.approx(2 / 3)
    assert out["avg_open"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert out["wavg_open"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert (out["total_closed"], out["total_open"], out["total_qas"]) == (3, 2, 5)
