"""VQA-RAD, SLAKE and PathVQA (parquet and pickle) from fixtures in their real raw formats."""

from __future__ import annotations

import json
import pickle

import pytest
from dp_raw_fixtures import write_pathvqa_parquet, write_pathvqa_pickle, write_slake, write_vqa_rad
from PIL import Image

from data_prepare.pathvqa import convert_pathvqa_parquet, convert_pathvqa_pickle, shard_split
from data_prepare.radvqa import convert_radvqa
from data_prepare.slake import convert_slake
from data_prepare.validate import validate_records
from vila_m3_core.errors import VilaM3Error


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def by_id(records):
    return {r["id"]: r for r in records}


def test_radvqa_train_has_open_closed_rephrasings_and_one_organ_question_per_image(tmp_path):
    source = write_vqa_rad(tmp_path)
    summary = convert_radvqa(str(source), str(tmp_path / "train.json"), split="train")
    records = by_id(load(tmp_path / "train.json"))
    assert set(records) == {"radvqa-1", "radvqa-1-rephrase", "radvqa-2", "radvqa-6", "radvqa-1-organ", "radvqa-6-organ"}
    assert records["radvqa-1"]["conversations"] == [
        {"from": "human", "value": "Is there a pneumothorax?\n<image>"},
        {"from": "gpt", "value": "No"},
    ]
    assert records["radvqa-1-rephrase"]["conversations"][0]["value"] == "Is a pneumothorax present?\n<image>"
    assert records["radvqa-2"]["answer_type"] == "open" and records["radvqa-1"]["answer_type"] == "closed"
    assert records["radvqa-1-organ"]["conversations"][1]["value"] == "chest"
    assert records["radvqa-6-organ"]["conversations"][1]["value"] == "abdomen"
    assert records["radvqa-6-organ"]["conversations"][0]["value"].endswith("\n<image>")
    # every raw item is accounted for: 3 train items converted + 3 test items + 1 malformed dropped
    assert summary["read"] == 7
    assert summary["dropped"]["test phrase_type (not in train)"] == 3
    assert summary["dropped"]["malformed item (missing image_name, answer, answer_type, phrase_type)"] == 1


def test_radvqa_test_is_closed_test_questions_and_missing_images_are_dropped(tmp_path):
    source = write_vqa_rad(tmp_path)
    summary = convert_radvqa(str(source), str(tmp_path / "test.json"), split="test")
    records = by_id(load(tmp_path / "test.json"))
    assert set(records) == {"radvqa-3", "radvqa-3-rephrase"}
    assert all(r["answer_type"] == "closed" and r["split"] == "test" for r in records.values())
    assert summary["dropped"]["invalid record (image missing)"] == 1  # synpic2.jpg is referenced but absent
    assert summary["dropped"]["open question (test keeps closed only)"] == 1
    convert_radvqa(str(source), str(tmp_path / "test_all.json"), split="test_all")
    all_records = by_id(load(tmp_path / "test_all.json"))
    assert set(all_records) == {"radvqa-3", "radvqa-3-rephrase", "radvqa-4"}
    assert all_records["radvqa-4"]["answer_type"] == "open"


def test_radvqa_bad_input(tmp_path):
    with pytest.raises(VilaM3Error, match="does not exist"):
        convert_radvqa(str(tmp_path / "missing.json"), str(tmp_path / "o.json"))
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(VilaM3Error, match="not valid JSON"):
        convert_radvqa(str(tmp_path / "bad.json"), str(tmp_path / "o.json"))
    (tmp_path / "empty.json").write_text(json.dumps([{"qid": 1}]))
    with pytest.raises(VilaM3Error, match="no valid record"):
        convert_radvqa(str(tmp_path / "empty.json"), str(tmp_path / "o.json"))
    with pytest.raises(VilaM3Error, match="split"):
        convert_radvqa(str(tmp_path / "empty.json"), str(tmp_path / "o.json"), split="val")


def test_slake_english_only_train_is_train_plus_validate_with_metadata(tmp_path):
    folder = write_slake(tmp_path / "slake")
    summary = convert_slake(str(folder), str(tmp_path / "train.json"), split="train", seed=0)
    records = load(tmp_path / "train.json")
    assert [r["id"] for r in records] == ["slake-train-1", "slake-train-3", "slake-validate-4"]
    assert summary["dropped"] == {"not English": 1}
    first = records[0]
    assert first["answer_type"] == "closed" and first["modality"] == "CT" and first["content_type"] == "Organ"
    assert first["image"] == "xmlab1/source.jpg"
    for record in records:
        human = record["conversations"][0]["value"]
        assert human.count("<image>") == 1 and (human.startswith("<image>\n") or human.endswith("\n<image>"))
    test = convert_slake(str(folder), str(tmp_path / "test.json"), split="test")
    assert test["written"] == 2 and test["dropped"] == {"not English": 1}
    assert validate_records(str(tmp_path / "test.json"), image_root=str(folder / "imgs"))["invalid"] == 0


def test_slake_placement_is_seeded(tmp_path):
    folder = write_slake(tmp_path / "slake")
    outputs = []
    for seed in range(6):
        convert_slake(str(folder), str(tmp_path / f"s{seed}.json"), seed=seed)
        outputs.append((tmp_path / f"s{seed}.json").read_bytes())
    convert_slake(str(folder), str(tmp_path / "again.json"), seed=0)
    assert (tmp_path / "again.json").read_bytes() == outputs[0]
    assert len(set(outputs)) > 1  # the seed changes the draws


def test_pathvqa_parquet_any_mode_to_rgb_jpeg_and_unreadable_images_dropped(tmp_path):
    source = write_pathvqa_parquet(tmp_path / "hf")
    images = tmp_path / "out" / "images"
    summary = convert_pathvqa_parquet(str(source), str(tmp_path / "out" / "train.json"), split="train")
    records = load(tmp_path / "out" / "train.json")
    assert summary["read"] == 6 and summary["written"] == 5
    assert summary["dropped"] == {"unreadable image": 1}
    assert {r["image"].split("/")[0] for r in records} == {"train", "validation"}
    for record in records:
        with Image.open(images / record["image"]) as image:
            assert image.mode == "RGB" and image.format == "JPEG"
    yes_no = {r["conversations"][1]["value"]: r["yes_no"] for r in records}
    assert yes_no == {"no": True, "fibrosis": False, "yes": True, "nodule": False}
    assert len({r["id"] for r in records}) == len(records)
    test = convert_pathvqa_parquet(str(source), str(tmp_path / "out" / "test.json"), split="test")
    assert test["written"] == 2


def test_pathvqa_parquet_is_byte_identical_across_runs(tmp_path):
    source = write_pathvqa_parquet(tmp_path / "hf")
    convert_pathvqa_parquet(str(source), str(tmp_path / "a" / "t.json"), seed=3)
    convert_pathvqa_parquet(str(source), str(tmp_path / "b" / "t.json"), seed=3)
    assert (tmp_path / "a" / "t.json").read_bytes() == (tmp_path / "b" / "t.json").read_bytes()
    for name in ("train/train_0001.jpg", "validation/val_0001.jpg"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()


def test_pathvqa_shard_split_from_names():
    from pathlib import Path

    assert shard_split(Path("data/train-00000-of-00007-3f7b.parquet")) == "train"
    assert shard_split(Path("data/validation-00002-of-00003.parquet")) == "validation"
    assert shard_split(Path("x/test/part-0.parquet")) == "test"
    assert shard_split(Path("x/other.parquet")) is None


def test_pathvqa_no_shards_is_an_error(tmp_path):
    with pytest.raises(VilaM3Error, match="no train/validation parquet shards"):
        convert_pathvqa_parquet(str(tmp_path), str(tmp_path / "o.json"))


def test_pathvqa_pickle_keeps_question_ids_and_flags_yes_no(tmp_path):
    source = write_pathvqa_pickle(tmp_path / "pvqa")
    summary = convert_pathvqa_pickle(
        str(source), str(tmp_path / "test.json"), image_root=str(tmp_path / "pvqa" / "images")
    )
    records = by_id(load(tmp_path / "test.json"))
    assert set(records) == {"100001000", "100001001", "100002000"}
    assert records["100001000"]["image"] == "test/test_0001.jpg"
    assert records["100001000"]["conversations"][1]["value"] == "no"
    assert records["100001000"]["yes_no"] is True and records["100001001"]["yes_no"] is False
    assert summary["dropped"] == {
        "invalid record (image missing)": 1,
        "malformed item (missing question_id, image, question or answer)": 1,
    }
    (tmp_path / "bad.pkl").write_bytes(b"garbage")
    with pytest.raises(VilaM3Error, match="could not be read"):
        convert_pathvqa_pickle(str(tmp_path / "bad.pkl"), str(tmp_path / "o.json"))
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(VilaM3Error, match="no valid record"):
        convert_pathvqa_pickle(str(tmp_path / "dict.pkl"), str(tmp_path / "o.json"))
