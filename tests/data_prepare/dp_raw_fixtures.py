"""Tiny fixtures written in each dataset's real raw format (a handful of records, tiny images)."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from vila_m3_core.experts.feedback import CXR_CLASSES


def tiny_image(path: Path, mode: str = "L", value: int = 100) -> Path:
    """Write a 6x5 image of ``mode`` at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (np.arange(30).reshape(5, 6) * 7 + value).astype(np.uint8)
    image = Image.fromarray(array, "L").convert(mode)
    image.save(path)
    return path


def image_bytes(mode: str, fmt: str = "PNG", value: int = 50) -> bytes:
    """Encoded bytes of a tiny image in ``mode`` (CMYK needs JPEG/TIFF)."""
    array = (np.arange(30).reshape(5, 6) * 5 + value).astype(np.uint8)
    image = Image.fromarray(array, "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_vqa_rad(root: Path) -> Path:
    """``VQA_RAD_Dataset_Public.json`` + ``VQA_RAD_Image_Folder`` (synpic2.jpg is referenced but absent)."""
    folder = root / "VQA_RAD_Image_Folder"
    for name in ("synpic1.jpg", "synpic3.jpg"):
        tiny_image(folder / name)

    def item(qid, image, question, answer, answer_type, phrase_type, rephrase="NULL", organ="CHEST"):
        return {
            "qid": qid,
            "image_name": image,
            "image_organ": organ,
            "answer": answer,
            "answer_type": answer_type,
            "question_type": "PRES",
            "question": question,
            "phrase_type": phrase_type,
            "question_rephrase": rephrase,
            "question_relation": "NULL",
            "question_frame": "NULL",
        }

    items = [
        item(1, "synpic1.jpg", "Is there a pneumothorax?", "No", "CLOSED", "freeform", "Is a pneumothorax present?"),
        item(2, "synpic1.jpg", "What organ is abnormal?", "lungs", "OPEN", "para"),
        item(
            3,
            "synpic3.jpg",
            "Is the heart enlarged?",
            "Yes",
            "CLOSED",
            "test_freeform",
            "Is there cardiomegaly?",
            organ="ABD",
        ),
        item(4, "synpic3.jpg", "Where is the lesion?", "left lobe", "OPEN", "test_para", organ="ABD"),
        item(5, "synpic2.jpg", "Is this a CT?", "yes", "CLOSED", "test_para", organ="HEAD"),
        item(6, "synpic3.jpg", "Is there a mass?", "no", "CLOSED", "freeform", organ="ABD"),
        {"qid": 7, "question": "no image name"},
    ]
    path = root / "VQA_RAD_Dataset_Public.json"
    path.write_text(json.dumps(items, indent=2), encoding="utf-8")
    return path


def write_slake(root: Path) -> Path:
    """SLAKE folder: ``train.json``, ``validate.json``, ``test.json`` and ``imgs/xmlab<N>/source.jpg``."""
    for n in (1, 2, 3):
        tiny_image(root / "imgs" / f"xmlab{n}" / "source.jpg", "RGB")

    def item(qid, n, question, answer, lang="en", answer_type="CLOSED"):
        return {
            "img_id": n,
            "img_name": f"xmlab{n}/source.jpg",
            "question": question,
            "answer": answer,
            "q_lang": lang,
            "location": "Lung",
            "modality": "CT",
            "answer_type": answer_type,
            "base_type": "vqa",
            "content_type": "Organ",
            "triple": ["vhead", "_", "_"],
            "qid": qid,
        }

    train = [
        item(1, 1, "Is this a CT?", "Yes"),
        item(2, 1, "这是CT吗?", "是", lang="zh"),
        item(3, 2, "Which organ is shown?", "Lung", answer_type="OPEN"),
    ]
    validate = [item(4, 2, "Does the lung look normal?", "No")]
    test = [
        item(5, 3, "What modality is used?", "CT", answer_type="OPEN"),
        item(6, 3, "Is it MRI?", "No"),
        item(7, 3, "图像是什么?", "CT", lang="zh"),
    ]
    for name, items in (("train", train), ("validate", validate), ("test", test)):
        (root / f"{name}.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return root


def write_pathvqa_parquet(root: Path) -> Path:
    """HF-style shards ``data/<split>-0000N-of-0000M-<hash>.parquet`` with images of several PIL modes."""
    rows = {
        "train-00000-of-00002-abc123.parquet": [
            ({"bytes": image_bytes("CMYK", "JPEG"), "path": "train_0001.jpg"}, "Is this tissue normal?", "no"),
            ({"bytes": image_bytes("RGBA"), "path": "train_0002.png"}, "What is seen here?", "fibrosis"),
        ],
        "train-00001-of-00002-def456.parquet": [
            ({"bytes": image_bytes("P"), "path": "train_0003.png"}, "Is there a nodule?", "yes"),
            ({"bytes": b"not an image", "path": "train_0004.jpg"}, "Broken?", "yes"),
            ({"bytes": image_bytes("I;16") if False else image_bytes("L"), "path": None}, "Grey?", "nodule"),
        ],
        "validation-00000-of-00001-aaa.parquet": [
            ({"bytes": image_bytes("RGB", "JPEG"), "path": "val_0001.jpg"}, "Is it inflamed?", "yes"),
        ],
        "test-00000-of-00001-bbb.parquet": [
            ({"bytes": image_bytes("LA"), "path": "test_0001.png"}, "Is this malignant?", "no"),
            ({"bytes": image_bytes("RGB", "JPEG"), "path": "test_0002.jpg"}, "What stain is used?", "h&e"),
        ],
    }
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name, shard in rows.items():
        table = pa.table(
            {"image": [r[0] for r in shard], "question": [r[1] for r in shard], "answer": [r[2] for r in shard]}
        )
        pq.write_table(table, folder / name)
    return root


def write_pathvqa_pickle(root: Path) -> Path:
    """UCSD-style ``qas/test_vqa.pkl`` (img_id, sent, label, question_id, answer_type) + ``images/test/*.jpg``."""
    for n in (1, 2):
        tiny_image(root / "images" / "test" / f"test_000{n}.jpg", "RGB")
    items = [
        {
            "img_id": "test_0001",
            "sent": "Is this normal?",
            "label": {"no": 1},
            "question_id": 100001000,
            "answer_type": "yes/no",
            "question_type": "is",
        },
        {
            "img_id": "test_0001",
            "sent": "What is shown?",
            "label": {"fibrosis": 1},
            "question_id": 100001001,
            "answer_type": "other",
            "question_type": "what",
        },
        {
            "img_id": "test_0002",
            "sent": "Is it stained?",
            "label": {"yes": 1},
            "question_id": 100002000,
            "answer_type": "yes/no",
            "question_type": "is",
        },
        {
            "img_id": "test_0009",
            "sent": "Missing image?",
            "label": {"yes": 1},
            "question_id": 100009000,
            "answer_type": "yes/no",
            "question_type": "is",
        },
        {"sent": "no id"},
    ]
    (root / "qas").mkdir(parents=True, exist_ok=True)
    path = root / "qas" / "test_vqa.pkl"
    path.write_bytes(pickle.dumps(items))
    return path


def cxr_scores(positive: tuple[str, ...] = (), as_strings: bool = False) -> dict:
    """Ensemble scores for the 18 classes: 0.8 for ``positive``, 0.5 (the untrained fill, "no") for the rest."""
    scores = {name: (0.8 if name in positive else 0.5) for name in CXR_CLASSES}
    return {k: f"{v:.4f}" for k, v in scores.items()} if as_strings else scores


def write_predictions(folder: Path, names_to_positive: dict[str, tuple[str, ...]]) -> Path:
    """One ``<name>.json`` ensemble file per entry."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, positive in names_to_positive.items():
        (folder / f"{name}.json").write_text(json.dumps(cxr_scores(positive)), encoding="utf-8")
    return folder


def write_mimic_vqa(root: Path) -> tuple[Path, Path]:
    """Medical-Diff-VQA ``mimic_pair_questions.csv`` + MIMIC-CXR-JPG ``mimic-cxr-2.0.0-metadata.csv``."""
    questions = (
        ",study_id,subject_id,ref_id,question_type,question,answer,split\n"
        "0,50000001,10000001,,abnormality,what abnormalities are seen in this image?,nodule,test\n"
        "1,50000001,10000001,,presence,is there evidence of pleural effusion in this image?,no,test\n"
        "2,50000001,10000001,,view,which view is this image taken?,PA view,test\n"
        "3,50000002,10000002,50000001,difference,what has changed compared to the reference image?,nothing,test\n"
        "4,50000002,10000002,,location,where in the image is the pleural effusion located?,left lung,train\n"
        "5,50000003,10000003,,level,what level is the cardiomegaly?,moderate,test\n"
        "6,50000099,10000099,,type,what type is the opacity?,patchy,test\n"
    )
    metadata = (
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns\n"
        "lat001,10000001,50000001,CHEST (PA AND LAT),LATERAL,10,10\n"
        "pa001,10000001,50000001,CHEST (PA AND LAT),PA,10,10\n"
        "ap002,10000002,50000002,CHEST (PORTABLE AP),AP,10,10\n"
        "ap003,10000003,50000003,CHEST (PORTABLE AP),AP,10,10\n"
    )
    csv_path = root / "mimic_pair_questions.csv"
    csv_path.write_text(questions, encoding="utf-8")
    meta_path = root / "mimic-cxr-2.0.0-metadata.csv"
    meta_path.write_text(metadata, encoding="utf-8")
    return csv_path, meta_path


def write_mimic_annotation(root: Path) -> Path:
    """R2Gen/DCL ``annotation.json`` with train/val/test lists and image files under ``files``."""
    data = {
        "train": [
            {
                "id": "s1",
                "study_id": 1,
                "subject_id": 10,
                "report": "The lungs are clear. No pneumothorax.",
                "image_path": ["p10/p10/s1/pa001.jpg", "p10/p10/s1/lat001.jpg"],
                "split": "train",
            },
            {
                "id": "s2",
                "study_id": 2,
                "subject_id": 11,
                "report": "Mild cardiomegaly.",
                "image_path": ["p11/p11/s2/ap002.jpg"],
                "split": "train",
            },
            {"id": "s3", "study_id": 3, "subject_id": 12, "report": "", "image_path": ["p12/p12/s3/x.jpg"]},
        ],
        "val": [],
        "test": [{"id": "s9", "report": "No acute process.", "image_path": ["p19/p19/s9/pa009.jpg"]}],
    }
    for relative in ("p10/p10/s1/pa001.jpg", "p10/p10/s1/lat001.jpg", "p11/p11/s2/ap002.jpg"):
        tiny_image(root / "files" / relative)
    path = root / "annotation.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    (root / "metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\npa001,10,1,PA\nlat001,10,1,LATERAL\nap002,11,2,AP\n",
        encoding="utf-8",
    )
    return path
