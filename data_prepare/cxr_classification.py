"""Per-class yes/no chest X-ray classification records with the exact prompts of the reference evaluation.

* ChestX-ray14: Google's 2019 four-findings expert labels (``Image Index``, ..., ``Fracture``, ``Pneumothorax``,
  ``Airspace opacity``, ``Nodule or mass``, ``Set Id``), read by column name (the reference used negative indices).
  The CSV ships in ``torchxrayvision/data/google2019_nih-chest-xray-labels.csv.gz`` and is the default input.
* CheXpert: the test set's ``groundtruth.csv`` (``Study`` + 14 label columns) or any CheXpert CSV with ``Path``.

Without predictions the prompt is the plain binary question; with CXR ensemble predictions it is the reference's
"expert" prompt (expert lines before the question, reply instruction last). One record per image and class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_prepare.cxr_predictions import CXRPredictions, PredictionError
from data_prepare.inputs import read_csv, shipped_data_file
from data_prepare.records import Tally, conversation, progress, write_records
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.tasks import BINARY_EXPERT_PROMPT, BINARY_PROMPT
from vila_m3_core.experts.feedback import cxr_prediction_lines

#: class name in the prompt -> CSV column (ChestX-ray14 four findings; the reference scored the first three)
CHESTXRAY14_CLASSES = {
    "fracture": "Fracture",
    "pneumothorax": "Pneumothorax",
    "lung opacity": "Airspace opacity",
    "nodule or mass": "Nodule or mass",
}
CHESTXRAY14_DEFAULT = ("fracture", "pneumothorax", "lung opacity")
#: class name in the prompt -> CSV column (the five CheXpert competition classes the reference scored)
CHEXPERT_CLASSES = {
    "atelectasis": "Atelectasis",
    "cardiomegaly": "Cardiomegaly",
    "consolidation": "Consolidation",
    "edema": "Edema",
    "pleural effusion": "Pleural Effusion",
}


def binary_prompt(class_name: str, findings: dict[str, bool] | None = None) -> str:
    """The reference evaluation prompt for one class (the evaluation's own template, so the two cannot drift); with
    ``findings`` the expert variant, whose lines are ``" <finding>: yes|no\\n"`` for all 18 classes in
    ``CXR_CLASSES`` order.
    """
    if findings is None:
        return BINARY_PROMPT.format(cls=class_name)
    lines = "".join(f" {line}\n" for line in cxr_prediction_lines(findings, order="given"))
    return BINARY_EXPERT_PROMPT.format(cls=class_name, lines=lines)


def _parse_classes(
    classes: str | list[str] | tuple[str, ...] | None, known: dict[str, str], default: tuple[str, ...]
) -> list[str]:
    if classes is None:
        return list(default)
    names = [c.strip().lower() for c in (classes.split(",") if isinstance(classes, str) else classes)]
    unknown = [c for c in names if c not in known]
    if unknown or not names:
        raise VilaM3Error(f"unknown class(es) {unknown}; choose from {list(known)}")
    return names


def _class_records(
    source: str,
    record_key: str,
    image: str,
    labels: dict[str, str],
    findings: dict[str, bool] | None,
    meta: dict[str, Any],
) -> list[dict[str, Any]]:
    out = []
    for class_name, label in labels.items():
        out.append(
            {
                "id": f"{record_key}/{class_name.replace(' ', '_')}",
                "image": image,
                "conversations": conversation(binary_prompt(class_name, findings), label),
                "answer_type": "closed",
                "question_type": "classification",
                "class_name": class_name,
                "label": label,
                **({"expert": "CXR"} if findings is not None else {}),
                "source": source,
                **meta,
            }
        )
    return out


def convert_chestxray14(
    input: str | None = None,
    output: str = "chestxray14_test.json",
    split: str = "test",
    classes: str | list[str] | None = None,
    image_ext: str | None = None,
    image_root: str | None = None,
    expert_predictions: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert the ChestX-ray14 four-findings labels to per-class yes/no records.

    Args:
        input: the labels CSV; default the copy shipped in ``torchxrayvision``.
        output: record file.
        split: ``test`` (1,962 images, the reference eval set), ``val`` or ``all`` (by ``Set Id``).
        classes: comma-separated subset of ``fracture, pneumothorax, lung opacity, nodule or mass``; default the
            reference's first three.
        image_ext: replace the image extension (``jpg`` for the reference's 512-px JPEG copies); default keep.
        image_root: image folder; missing images are dropped when given.
        expert_predictions: folder of CXR ensemble JSONs (``<image id>.json`` or ``<image>.json``): expert prompts.
        seed: unused (nothing is drawn); accepted for a uniform command line.
    """
    del seed
    names = _parse_classes(classes, CHESTXRAY14_CLASSES, CHESTXRAY14_DEFAULT)
    if split not in ("test", "val", "all"):
        raise VilaM3Error(f"chestxray14 split must be test, val or all, not {split!r}")
    columns = ["Image Index", "Set Id", *(CHESTXRAY14_CLASSES[c] for c in names)]
    frame = read_csv(
        input or shipped_data_file("google2019_nih-chest-xray-labels.csv.gz"),
        "ChestX-ray14 four-findings labels CSV",
        columns,
    )
    predictions = CXRPredictions(expert_predictions) if expert_predictions else None
    tally = Tally(f"chestxray14/{split}" + ("/expert" if predictions else ""))
    records: list[dict[str, Any]] = []
    for row in progress(frame.to_dict("records"), "chestxray14"):
        tally.read += 1
        set_id = row["Set Id"].strip().lower()
        if split != "all" and set_id != split:
            tally.drop(f"other split (not {split})", f"{row['Image Index']}: {set_id}")
            continue
        image = row["Image Index"].strip()
        if not image:
            tally.drop("malformed row (empty Image Index)", row)
            continue
        if image_ext:
            image = str(Path(image).with_suffix("." + image_ext.lstrip(".")))
        values = {c: row[CHESTXRAY14_CLASSES[c]].strip().upper() for c in names}
        bad = [c for c, v in values.items() if v not in ("YES", "NO")]
        if bad:
            tally.drop("label not YES/NO", f"{image}: {values}")
            continue
        findings = None
        if predictions is not None:
            try:
                findings = predictions.findings(image)
            except PredictionError as err:
                tally.drop(str(err), image)
                continue
        labels = {c: "yes" if v == "YES" else "no" for c, v in values.items()}
        meta = {"split": "val" if set_id == "val" else "test", "source_id": row["Image Index"].strip()}
        records.extend(_class_records("chestxray14", Path(image).stem, image, labels, findings, meta))
    return write_records(records, output, tally, image_root)


def chexpert_image(study_or_path: str) -> str:
    """The frontal image of a CheXpert row, relative to the dataset root: the ``CheXpert-v1.0*/`` prefix removed,
    and ``view1_frontal.jpg`` appended to a ``Study`` folder (the reference used one frontal image per study)."""
    parts = Path(study_or_path.strip()).parts
    if parts and parts[0].lower().startswith("chexpert-v1.0"):
        parts = parts[1:]
    relative = "/".join(parts)
    return relative if Path(relative).suffix else f"{relative}/view1_frontal.jpg"


def convert_chexpert(
    input: str,
    output: str = "chexpert_test.json",
    classes: str | list[str] | None = None,
    image_root: str | None = None,
    expert_predictions: str | None = None,
    split: str = "test",
    seed: int = 0,
) -> dict[str, Any]:
    """Convert a CheXpert label CSV (``groundtruth.csv`` of the test set) to per-class yes/no records.

    A label counts as positive when it is 1; 0 and empty are negative; uncertain (-1) rows are dropped and counted
    (the reference's "contains '1'" test made -1 positive).

    Args:
        input: ``groundtruth.csv`` (``Study`` column) or a CheXpert CSV with a ``Path`` column.
        output: record file.
        classes: comma-separated subset of the five reference classes (default all five).
        image_root: dataset root; missing images are dropped when given.
        expert_predictions: folder of CXR ensemble JSONs (``<image>.json`` or ``patientXXXXX.json``).
        split: written into the records.
        seed: unused (nothing is drawn); accepted for a uniform command line.
    """
    del seed
    names = _parse_classes(classes, CHEXPERT_CLASSES, tuple(CHEXPERT_CLASSES))
    label_columns = [CHEXPERT_CLASSES[c] for c in names]
    frame = read_csv(input, "CheXpert label CSV", label_columns)
    key_column = "Study" if "Study" in frame.columns else "Path" if "Path" in frame.columns else None
    if key_column is None:
        raise VilaM3Error(f"CheXpert CSV {input} needs a Study or Path column; found {list(frame.columns)}")
    predictions = CXRPredictions(expert_predictions) if expert_predictions else None
    tally = Tally("chexpert" + ("/expert" if predictions else ""))
    records: list[dict[str, Any]] = []
    for row in progress(frame.to_dict("records"), "chexpert"):
        tally.read += 1
        if not row[key_column].strip():
            tally.drop(f"malformed row (empty {key_column})", row)
            continue
        image = chexpert_image(row[key_column])
        raw = {c: row[CHEXPERT_CLASSES[c]].strip() for c in names}
        try:
            numeric = {c: float(v) if v else 0.0 for c, v in raw.items()}
        except ValueError:
            tally.drop("label not numeric", f"{image}: {raw}")
            continue
        if any(v not in (0.0, 1.0) for v in numeric.values()):
            tally.drop("uncertain or invalid label (not 0/1)", f"{image}: {raw}")
            continue
        findings = None
        if predictions is not None:
            patient = [p for p in Path(image).parts if p.startswith("patient")][:1]
            try:
                findings = predictions.findings(image, extra_names=patient)
            except PredictionError as err:
                tally.drop(str(err), image)
                continue
        labels = {c: "yes" if v == 1.0 else "no" for c, v in numeric.items()}
        key = str(Path(image).with_suffix("")).replace("/", "-")
        records.extend(
            _class_records(
                "chexpert", key, image, labels, findings, {"split": split, "source_id": row[key_column].strip()}
            )
        )
    return write_records(records, output, tally, image_root)
