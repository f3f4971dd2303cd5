"""Record files written here load in the evaluation (vila_m3_core.evaluation.tasks) without drops."""

from __future__ import annotations

import json

from dp_raw_fixtures import write_mimic_vqa, write_pathvqa_pickle, write_vqa_rad

from data_prepare.cxr_classification import convert_chestxray14
from data_prepare.mimic_vqa import convert_mimic_vqa
from data_prepare.pathvqa import convert_pathvqa_pickle
from data_prepare.radvqa import convert_radvqa
from data_prepare.reports import convert_iu_xray
from vila_m3_core.evaluation.tasks import build_items, get_task, read_records


def items_for(task, path):
    records = read_records(path)
    return records, build_items(get_task(task), records, image_root=None)


def test_classification_records_feed_the_chestxray14_task(tmp_path):
    convert_chestxray14(output=str(tmp_path / "cx.jsonl"))
    records, items = items_for("chestxray14", tmp_path / "cx.jsonl")
    assert len(items) == len(records) == 3 * 1962
    by_id = {item.id: item for item in items}
    record = records[0]
    assert by_id[record["id"]].prompt == record["conversations"][0]["value"]
    assert by_id[record["id"]].meta["label"] == (1 if record["label"] == "yes" else 0)


def test_vqa_and_report_records_feed_their_tasks(tmp_path):
    convert_radvqa(str(write_vqa_rad(tmp_path)), str(tmp_path / "rad.json"), split="test_all")
    records, items = items_for("radvqa", tmp_path / "rad.json")
    assert {i.id for i in items} == {r["id"] for r in records}
    pickle_path = write_pathvqa_pickle(tmp_path / "pvqa")
    convert_pathvqa_pickle(str(pickle_path), str(tmp_path / "pvqa.json"))
    records, items = items_for("pathvqa", tmp_path / "pvqa.json")
    assert {i.id for i in items} == {"100001000", "100001001", "100002000", "100009000"}  # question_ids to join on
    questions, metadata = write_mimic_vqa(tmp_path)
    convert_mimic_vqa(str(questions), str(tmp_path / "m.json"), split="test", metadata=str(metadata))
    records, items = items_for("mimicvqa", tmp_path / "m.json")
    assert {i.meta.get("answer_type") for i in items} == {"open", "closed"}
    assert {i.meta.get("question_type") for i in items} == {"abnormality", "presence", "view", "level"}
    convert_iu_xray(output=str(tmp_path / "iu.json"))
    records, items = items_for("report_iu", tmp_path / "iu.json")
    assert len(items) == len(records) and items[0].reference == records[0]["conversations"][1]["value"]
    assert json.loads((tmp_path / "iu.json").read_text())[0]["id"] == items[0].id
