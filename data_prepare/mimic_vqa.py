"""Medical-Diff-VQA ("MIMIC-VQA") to one conversation record per question.

Input: the dataset's ``mimic_pair_questions.csv``-style CSV (columns ``study_id``, ``subject_id``,
``question_type``, ``question``, ``answer``, ``split``; ``dicom_id`` optional) and the MIMIC-CXR-JPG image layout
``files/p<2 digits>/p<subject>/s<study>/<dicom>.jpg``. Without a ``dicom_id`` column the image of each study is
taken from the MIMIC-CXR-JPG metadata CSV (PA preferred, then AP, then any view; ties by dicom id).

``question_type`` is kept (the ``difference`` type needs two images and is excluded), ``answer_type`` is
``closed`` only for yes/no answers. With CXR ensemble predictions, the expert results go on one line before the
question (``<expert line>\\nquestion\\n<image>``), as in the ``expert_mimic_vqa`` training set.
"""

from __future__ import annotations

from typing import Any

from data_prepare.cxr_predictions import CXRPredictions, PredictionError
from data_prepare.inputs import read_csv
from data_prepare.records import Tally, answer_type_of, conversation, progress, strip_placeholders, write_records
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.feedback import cxr_feedback

QUESTION_TYPES = ("abnormality", "presence", "view", "location", "level", "type")
REQUIRED_COLUMNS = ("study_id", "subject_id", "question_type", "question", "answer", "split")
SPLITS = ("train", "val", "test", "all")
_VIEW_PREFERENCE = {"PA": 0, "AP": 1}


def mimic_jpg_path(subject_id: str, study_id: str, dicom_id: str) -> str:
    """The MIMIC-CXR-JPG relative path of one image (``files/p10/p10000032/s50414267/<dicom>.jpg``)."""
    subject = subject_id.lstrip("p")
    study = study_id.lstrip("s")
    return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"


def study_images(metadata: str) -> dict[str, str]:
    """study id -> the dicom id of its preferred view (PA, then AP, then others; ties by dicom id)."""
    frame = read_csv(metadata, "MIMIC-CXR-JPG metadata CSV", ("dicom_id", "study_id", "ViewPosition"))
    best: dict[str, tuple[int, str]] = {}
    for dicom, study, view in zip(frame["dicom_id"], frame["study_id"], frame["ViewPosition"]):
        rank = (_VIEW_PREFERENCE.get(view.strip().upper(), 2), dicom)
        if study not in best or rank < best[study]:
            best[study] = rank
    return {study: rank[1] for study, rank in best.items()}


def expert_line(findings: dict[str, bool]) -> str:
    """The CXR expert results on one line: the shared CXR feedback text with its newlines turned into spaces.

    The D-RAX prefix wording is not in the reference; the prefix must be one line (the reference notebook splits
    the first turn on newlines), so the inference feedback text is flattened rather than a new wording invented.
    """
    return " ".join(cxr_feedback(findings, order="given").split("\n"))


def convert_mimic_vqa(
    input: str,
    output: str,
    split: str = "train",
    metadata: str | None = None,
    image_root: str | None = None,
    expert_predictions: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert the Medical-Diff-VQA question CSV to records.

    Args:
        input: ``mimic_pair_questions.csv`` (or a CSV with the same columns).
        output: record file; image paths are MIMIC-CXR-JPG relative paths.
        split: ``train``, ``val``, ``test`` or ``all`` (rows are selected by the CSV's ``split`` column).
        metadata: MIMIC-CXR-JPG ``mimic-cxr-2.0.0-metadata.csv(.gz)``; needed when the CSV has no ``dicom_id``.
        image_root: the MIMIC-CXR-JPG root; records whose image is missing under it are dropped.
        expert_predictions: CXR ensemble predictions (the ``predict`` verb's JSON or a folder of per-image JSONs);
            adds the expert line before each question.
        seed: unused (the conversion draws nothing); accepted for a uniform command line.
    """
    del seed
    if split not in SPLITS:
        raise VilaM3Error(f"mimic_vqa split must be one of {SPLITS}, not {split!r}")
    frame = read_csv(input, "MIMIC-VQA question CSV", REQUIRED_COLUMNS)
    has_dicom = "dicom_id" in frame.columns
    if not has_dicom and metadata is None:
        raise VilaM3Error("the question CSV has no dicom_id column: pass --metadata mimic-cxr-2.0.0-metadata.csv.gz")
    dicom_of_study = study_images(metadata) if not has_dicom else {}
    predictions = CXRPredictions(expert_predictions) if expert_predictions else None
    tally = Tally(f"mimic_vqa/{split}" + ("/expert" if predictions else ""))
    records: list[dict[str, Any]] = []
    rows = frame.to_dict("records")
    for row_number, row in enumerate(progress(rows, "mimic_vqa")):
        tally.read += 1
        if split != "all" and row["split"].strip() != split:
            tally.drop(f"other split (not {split})", row["split"])
            continue
        qtype = row["question_type"].strip().lower()
        if qtype == "difference":
            tally.drop("difference question (two images; excluded)", row["question"])
            continue
        if qtype not in QUESTION_TYPES:
            tally.drop("unknown question_type", f"{qtype!r}: {row['question']}")
            continue
        question, answer = strip_placeholders(row["question"]), row["answer"].strip()
        study, subject = row["study_id"].strip(), row["subject_id"].strip()
        if not question or not answer or not study or not subject:
            tally.drop("malformed row (empty study, subject, question or answer)", row)
            continue
        dicom = row["dicom_id"].strip() if has_dicom else dicom_of_study.get(study.lstrip("s"), "")
        if not dicom:
            tally.drop("study not in the metadata CSV", study)
            continue
        image = mimic_jpg_path(subject, study, dicom)
        human = f"{question}\n<image>"
        if predictions is not None:
            try:
                findings = predictions.findings(image)
            except PredictionError as err:
                tally.drop(str(err), image)
                continue
            human = f"{expert_line(findings)}\n{human}"
        records.append(
            {
                "id": f"mimicvqa-{row_number}",
                "image": image,
                "conversations": conversation(human, answer),
                "split": row["split"].strip() if row["split"].strip() in SPLITS else split,
                "answer_type": answer_type_of(answer),
                "question_type": qtype,
                "source": "mimic_vqa",
                "source_id": f"{subject}/{study}",
            }
        )
    return write_records(records, output, tally, image_root)
