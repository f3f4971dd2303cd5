"""Shared record machinery: the schema and checks catch every kind of broken record; writing is deterministic and
never silent."""

from __future__ import annotations

import copy
import json

import pytest

from data_prepare.checks import record_problem
from data_prepare.records import Tally, answer_type_of, question_with_image, rng_for, write_records
from data_prepare.validate import validate_records
from vila_m3_core.errors import VilaM3Error

GOOD = {
    "id": "a1",
    "image": "x.png",
    "conversations": [{"from": "human", "value": "Is it?\n<image>"}, {"from": "gpt", "value": "yes"}],
    "answer_type": "closed",
}


def broken(**changes):
    record = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


BROKEN = {
    "no id": (broken(id=None), "schema"),
    "empty id": (broken(id=""), "schema"),
    "no conversations": (broken(conversations=None), "schema"),
    "one turn": (broken(conversations=[GOOD["conversations"][0]]), "schema"),
    "bad role": (
        broken(conversations=[{"from": "human", "value": "q\n<image>"}, {"from": "bot", "value": "a"}]),
        "schema",
    ),
    "starts with gpt": (
        broken(conversations=[{"from": "gpt", "value": "<image>a"}, {"from": "human", "value": "q"}]),
        "schema",
    ),
    "empty text": (
        broken(conversations=[{"from": "human", "value": "<image>"}, {"from": "gpt", "value": ""}]),
        "schema",
    ),
    "image and images": (broken(images=["x.png"]), "schema"),
    "bad answer_type": (broken(answer_type="CLOSED"), "schema"),
    "non-string image": (broken(image=3), "schema"),
    "nested metadata": (broken(extra={"a": 1}), "schema"),
    "two humans in a row": (
        broken(
            conversations=[
                {"from": "human", "value": "q\n<image>"},
                {"from": "gpt", "value": "a"},
                {"from": "gpt", "value": "b"},
            ]
        ),
        "turn order",
    ),
    "missing placeholder": (
        broken(conversations=[{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]),
        "placeholder count",
    ),
    "extra placeholder": (
        broken(
            images=["x.png"],
            image=None,
            conversations=[{"from": "human", "value": "<image><image>q"}, {"from": "gpt", "value": "a"}],
        ),
        "placeholder count",
    ),
    "placeholder in gpt": (
        broken(conversations=[{"from": "human", "value": "q\n<image>"}, {"from": "gpt", "value": "<image>"}]),
        "placeholder count",
    ),
    "text-only with placeholder": (broken(image=None), "placeholder count"),
}


def test_good_record_passes(tmp_path):
    assert record_problem(GOOD) is None
    (tmp_path / "x.png").write_bytes(b"x")
    assert record_problem(GOOD, tmp_path) is None
    text_only = broken(image=None, conversations=[{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}])
    assert record_problem(text_only) is None


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_kind_of_broken_record_is_caught(name):
    record, kind = BROKEN[name]
    problem = record_problem(record)
    assert problem is not None and problem[0] == kind, problem


def test_missing_and_unreadable_images_are_caught(tmp_path):
    assert record_problem(GOOD, tmp_path)[0] == "image missing"
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert record_problem(GOOD, tmp_path) is None  # existence only by default
    assert record_problem(GOOD, tmp_path, verify_images=True)[0] == "image unreadable"
    from PIL import Image

    Image.new("L", (3, 2)).save(tmp_path / "x.png")
    assert record_problem(GOOD, tmp_path, verify_images=True) is None


def test_validate_verb_reports_every_problem_kind(tmp_path):
    records = [GOOD, copy.deepcopy(GOOD)] + [r for r, _ in BROKEN.values()]
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(r) for r in records] + ["{not json"]
    path.write_text("\n".join(lines) + "\n")
    summary = validate_records(str(path))
    assert summary["valid"] == 1
    assert summary["records"] == len(records) + 1
    assert summary["invalid"] == len(records) - 1 + 1
    expected = {kind for _, kind in BROKEN.values()} | {"duplicate id", "malformed JSON line"}
    assert set(summary["problems"]) == expected
    assert summary["counts"]["answer_type"] == {"closed": 1}
    summary = validate_records(str(path), image_root=str(tmp_path))
    assert summary["problems"]["image missing"] == 2 and summary["valid"] == 0


def test_writer_drops_invalid_and_duplicate_records_and_counts_them(tmp_path):
    tally = Tally("t")
    tally.read = 3
    summary = write_records([GOOD, copy.deepcopy(GOOD), BROKEN["missing placeholder"][0]], tmp_path / "o.json", tally)
    assert summary["written"] == 1
    assert summary["dropped"] == {"invalid record (duplicate id)": 1, "invalid record (placeholder count)": 1}
    assert json.loads((tmp_path / "o.json").read_text()) == [GOOD]


def test_writer_raises_when_nothing_valid_remains(tmp_path):
    tally = Tally("t")
    with pytest.raises(VilaM3Error, match="no valid record"):
        write_records([BROKEN["no id"][0]], tmp_path / "o.json", tally)
    assert not (tmp_path / "o.json").exists()
    with pytest.raises(VilaM3Error, match=".json"):
        write_records([GOOD], tmp_path / "o.txt", Tally("t"))


def test_jsonl_and_json_hold_the_same_records(tmp_path):
    write_records([GOOD], tmp_path / "o.jsonl", Tally("t"))
    write_records([GOOD], tmp_path / "o.json", Tally("t"))
    assert [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()] == json.loads(
        (tmp_path / "o.json").read_text()
    )


def test_seeded_draws_depend_on_seed_and_key_only():
    assert rng_for(0, "a", 1).random() == rng_for(0, "a", 1).random()
    assert rng_for(0, "a", 1).random() != rng_for(1, "a", 1).random()
    placements = {question_with_image("q", "random", rng_for(0, i)) for i in range(20)}
    assert placements == {"q\n<image>", "<image>\nq"}
    with pytest.raises(VilaM3Error):
        question_with_image("q", "middle")


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("yes", "closed"),
        ("No.", "closed"),
        ("nodule", "open"),
        ("normal", "open"),
        ("no acute findings", "open"),
        ("Yes ", "closed"),
    ],
)
def test_answer_type_is_exact_yes_no_not_substring(answer, kind):
    assert answer_type_of(answer) == kind
