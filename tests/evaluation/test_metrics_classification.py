"""Classification: word-level yes/no parsing (the reference's substring bugs fixed), per-class F1, macro mean, AUC."""

import math

import pytest

from vila_m3_core.evaluation.metrics.classification import (
    CHESTXRAY14_CLASSES,
    CHEXPERT_CLASSES,
    binary_auc,
    classification_scores,
    parse_choice_letters,
    parse_yes_no,
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes", 1),
        ("yes.", 1),
        ("No.", 0),
        ("no", 0),
        ("Yes, there is a small pneumothorax.", 1),
        ("There is no pleural effusion.", 0),
        ("Answer: no", 0),
        ("A: yes", 1),
        ("not sure", None),  # the reference matched "no" inside "not"
        ("I don't know", None),  # ... and inside "know"
        ("Nothing abnormal", None),
        ("(B) Pneumothorax", None),  # letters are not yes/no (the reference mapped them to 0-3)
        ("a", None),
        ("", None),
        ("Nope", None),
        ("YES!", 1),
    ],
)
def test_parse_yes_no(answer, expected):
    assert parse_yes_no(answer) == expected


def test_parse_choice_letters_reads_letters_not_characters_of_words():
    assert parse_choice_letters("(A) Atelectasis,(C) Consolidation", 4) == [0, 2]
    assert parse_choice_letters("(A),(C)", 4) == [0, 2]
    assert parse_choice_letters("B.", 4) == [1]
    assert parse_choice_letters("a fracture and a lung opacity", 4) == []
    assert parse_choice_letters("(E) Pleural effusion", 4) == []  # beyond the options


def test_reference_classes():
    assert CHESTXRAY14_CLASSES == ("fracture", "pneumothorax", "lung opacity")
    assert CHEXPERT_CLASSES == ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural effusion")


def test_f1_per_class_macro_and_unparseable_hand_computed():
    y_true = {"fracture": [1, 1, 0, 0], "pneumothorax": [1, 0, 0, 0], "lung opacity": [0, 0, 0, 0]}
    y_pred = {
        "fracture": [1, None, 1, 0],  # tp 1, fn 1 (unparseable scored as no), fp 1 -> F1 0.5
        "pneumothorax": [1, 0, 0, 0],  # perfect -> 1.0
        "lung opacity": [0, 0, 1, None],  # no positives: F1 0 (zero_division)
    }
    out = classification_scores(y_true, y_pred, CHESTXRAY14_CLASSES)
    assert out["per_class"]["fracture"]["f1"] == pytest.approx(0.5)
    assert out["per_class"]["pneumothorax"]["f1"] == pytest.approx(1.0)
    assert out["per_class"]["lung opacity"]["f1"] == 0.0
    assert out["f1"] == pytest.approx(1.5 / 3)
    assert out["n_unparseable"] == 2 and out["per_class"]["fracture"]["n_unparseable"] == 1
    assert out["per_class"]["fracture"]["n_positive"] == 2


def test_auc_when_scores_are_given():
    y_true = {"edema": [0, 0, 1, 1]}
    out = classification_scores(y_true, {"edema": [0, 0, 1, 0]}, scores={"edema": [0.1, 0.4, 0.35, 0.8]})
    assert out["per_class"]["edema"]["auc"] == pytest.approx(0.75)
    assert math.isnan(binary_auc([1, 1], [0.2, 0.3]))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        classification_scores({"edema": [0, 1]}, {"edema": [1]})
