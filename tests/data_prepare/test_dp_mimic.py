"""MIMIC-VQA (Medical-Diff-VQA CSV) and MIMIC-CXR reports, including the OpenAI-compatible rewriting step tested
against a tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dp_raw_fixtures import cxr_scores, write_mimic_annotation, write_mimic_vqa, write_predictions

from data_prepare.cxr_predictions import CXR_THRESHOLD
from data_prepare.mimic_vqa import convert_mimic_vqa, mimic_jpg_path
from data_prepare.reports import convert_mimic_reports, report_sentence_pool
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.feedback import cxr_feedback, cxr_findings


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_mimic_vqa_one_record_per_question_with_types_and_exact_closed_flag(tmp_path):
    questions, metadata = write_mimic_vqa(tmp_path)
    summary = convert_mimic_vqa(str(questions), str(tmp_path / "test.json"), split="test", metadata=str(metadata))
    records = {r["id"]: r for r in load(tmp_path / "test.json")}
    assert set(records) == {"mimicvqa-0", "mimicvqa-1", "mimicvqa-2", "mimicvqa-5"}
    nodule = records["mimicvqa-0"]
    assert nodule["answer_type"] == "open"  # the reference called "nodule" closed (substring "no")
    assert records["mimicvqa-1"]["answer_type"] == "closed"
    assert nodule["question_type"] == "abnormality" and records["mimicvqa-5"]["question_type"] == "level"
    assert nodule["image"] == "files/p10/p10000001/s50000001/pa001.jpg"  # PA preferred over the lateral
    assert records["mimicvqa-5"]["image"] == mimic_jpg_path("10000003", "50000003", "ap003")
    assert nodule["conversations"][0]["value"] == "what abnormalities are seen in this image?\n<image>"
    assert summary["read"] == 7
    assert summary["dropped"] == {
        "difference question (two images; excluded)": 1,
        "other split (not test)": 1,
        "study not in the metadata CSV": 1,
    }


def test_mimic_vqa_expert_line_comes_from_the_shared_cxr_feedback(tmp_path):
    questions, metadata = write_mimic_vqa(tmp_path)
    preds = write_predictions(tmp_path / "ensemble", {"pa001.jpg": ("Effusion", "Nodule")})  # ap003 has none
    summary = convert_mimic_vqa(
        str(questions), str(tmp_path / "e.json"), split="test", metadata=str(metadata), expert_predictions=str(preds)
    )
    records = {r["id"]: r for r in load(tmp_path / "e.json")}
    human = records["mimicvqa-1"]["conversations"][0]["value"]
    expert, question, placeholder = human.split("\n")
    assert placeholder == "<image>" and question.startswith("is there evidence")
    findings = cxr_findings(cxr_scores(("Effusion", "Nodule")), CXR_THRESHOLD)
    assert expert == " ".join(cxr_feedback(findings, order="given").split("\n"))
    assert "effusion: yes" in expert and "atelectasis: no" in expert  # 0.5 is not > 0.5
    assert summary["dropped"]["prediction missing"] == 1 and set(records) == {"mimicvqa-0", "mimicvqa-1", "mimicvqa-2"}


def test_mimic_vqa_needs_dicom_ids_or_metadata_and_required_columns(tmp_path):
    questions, _ = write_mimic_vqa(tmp_path)
    with pytest.raises(VilaM3Error, match="--metadata"):
        convert_mimic_vqa(str(questions), str(tmp_path / "o.json"))
    (tmp_path / "bad.csv").write_text("study_id,question\n1,q\n")
    with pytest.raises(VilaM3Error, match="lacks the column"):
        convert_mimic_vqa(str(tmp_path / "bad.csv"), str(tmp_path / "o.json"), metadata=str(tmp_path / "bad.csv"))


def test_mimic_reports_per_image_per_study_and_frontal(tmp_path):
    annotation = write_mimic_annotation(tmp_path)
    summary = convert_mimic_reports(str(annotation), str(tmp_path / "img.json"), image_root=str(tmp_path / "files"))
    records = load(tmp_path / "img.json")
    assert [r["id"] for r in records] == ["s1/pa001", "s1/lat001", "s2/ap002"]
    assert records[0]["conversations"] == [
        {"from": "human", "value": "<image>\nDescribe the image in detail."},
        {"from": "gpt", "value": "The lungs are clear. No pneumothorax."},
    ]
    assert summary["dropped"] == {"malformed item (empty report or image_path)": 1}
    convert_mimic_reports(str(annotation), str(tmp_path / "study.json"), per="study")
    study = load(tmp_path / "study.json")
    assert study[0]["images"] == ["p10/p10/s1/pa001.jpg", "p10/p10/s1/lat001.jpg"]
    assert study[0]["conversations"][0]["value"] == "<image>\n<image>\nDescribe the image in detail."
    assert study[1]["image"] == "p11/p11/s2/ap002.jpg"
    frontal = convert_mimic_reports(
        str(annotation), str(tmp_path / "f.json"), frontal_only=True, metadata=str(tmp_path / "metadata.csv")
    )
    assert [r["id"] for r in load(tmp_path / "f.json")] == ["s1/pa001", "s2/ap002"]
    assert frontal["dropped"]["not a frontal view (image)"] == 1
    with pytest.raises(VilaM3Error, match="--metadata"):
        convert_mimic_reports(str(annotation), str(tmp_path / "f.json"), frontal_only=True)
    with pytest.raises(VilaM3Error, match="no 'val'"):
        convert_mimic_reports(str(_write(tmp_path / "a.json", {"train": []})), str(tmp_path / "x.json"), split="val")


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


class _ChatServer:
    """A minimal OpenAI-compatible ``/v1/chat/completions`` endpoint on 127.0.0.1 that records the requests."""

    def __init__(self, answer_for):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                content = answer_for(body["messages"][-1]["content"])
                if content is None:
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "boom"}}')
                    return
                payload = {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _rewrite_answer(prompt: str) -> str | None:
    report = prompt.split("Report: ", 1)[1]
    if "cardiomegaly" in report:
        return None  # the endpoint fails for this report
    return "New report: " + report.replace("The lungs are clear.", "The lungs are clear of consolidation.")


def test_mimic_reports_rewriting_uses_the_endpoint_and_counts_failures(tmp_path, monkeypatch):
    annotation = write_mimic_annotation(tmp_path)
    pool = tmp_path / "pool.txt"
    pool.write_text("The lungs are clear of consolidation.\nNo pneumothorax.\n")
    monkeypatch.setenv("TEST_LLM_KEY", "secret-123")
    with _ChatServer(_rewrite_answer) as server:
        summary = convert_mimic_reports(
            str(annotation),
            str(tmp_path / "r.json"),
            rewrite_url=server.url,
            rewrite_model="tiny-llm",
            sentence_pool=str(pool),
            api_key_env="TEST_LLM_KEY",
        )
    records = load(tmp_path / "r.json")
    assert [r["conversations"][1]["value"] for r in records] == [
        "The lungs are clear of consolidation. No pneumothorax."
    ] * 2
    assert summary["dropped"]["rewrite failed"] == 1
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer secret-123"
    assert first["body"]["model"] == "tiny-llm" and first["body"]["stream"] is False
    assert first["body"]["messages"][0] == {"role": "system", "content": "You are an expert radiologist."}
    assert "No pneumothorax." in first["body"]["messages"][1]["content"]  # the pool is in the prompt
    # one call per study, not per image (s1 has two images); the failing report was retried by the client
    assert (
        sum("The lungs are clear" in r["body"]["messages"][1]["content"].split("Report: ")[1] for r in server.requests)
        == 1
    )


def test_rewriting_is_off_by_default_and_needs_a_pool(tmp_path):
    annotation = write_mimic_annotation(tmp_path)
    convert_mimic_reports(str(annotation), str(tmp_path / "r.json"))
    assert load(tmp_path / "r.json")[0]["conversations"][1]["value"] == "The lungs are clear. No pneumothorax."
    with pytest.raises(VilaM3Error, match="sentence_pool"):
        convert_mimic_reports(
            str(annotation), str(tmp_path / "r.json"), rewrite_url="http://127.0.0.1:9/v1", rewrite_model="m"
        )


def test_sentence_pool_from_train_reports(tmp_path):
    annotation = write_mimic_annotation(tmp_path)
    with _ChatServer(lambda prompt: "1. The lungs are clear.\n- No pneumothorax.\nMild cardiomegaly.\n") as server:
        summary = report_sentence_pool(
            str(annotation), str(tmp_path / "pool.txt"), server.url, "tiny-llm", chunk_size=2
        )
    assert (tmp_path / "pool.txt").read_text() == "The lungs are clear.\nNo pneumothorax.\nMild cardiomegaly.\n"
    assert summary["sentences"] == 3
    assert len(server.requests) == 2  # 3 train sentences in chunks of 2
    assert "No acute process" not in json.dumps([r["body"] for r in server.requests])  # test text never used
