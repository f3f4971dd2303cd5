"""Report-generation records ("Describe the image in detail." -> report) from MIMIC-CXR and IU X-ray.

* MIMIC-CXR: the R2Gen/DCL annotation JSON (``{"train"|"val"|"test": [{"id", "report", "image_path": [...]}]}``)
  with MIMIC-CXR-JPG images; one record per image (the reference) or per study (all its images in one record),
  an optional frontal-only filter (views from the MIMIC-CXR-JPG metadata CSV), and the optional LLM rewriting.
* IU X-ray: the NLMCXR XML reports (``NLMCXR_reports.tgz`` or its extracted folder), FINDINGS + IMPRESSION.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_prepare.inputs import read_csv, read_json, shipped_data_file
from data_prepare.records import Tally, conversation, progress, write_records
from data_prepare.report_rewrite import ReportRewriter, RewriteError, read_pool
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.evaluation.tasks import REPORT_QUERY

FRONTAL_VIEWS = ("PA", "AP")
PER_OPTIONS = ("image", "study")


def report_turn(n_images: int) -> str:
    """The human turn: one ``<image>\\n`` per image, then the report question (VFlan's ``"<image>\\n" + q``)."""
    return "<image>\n" * n_images + REPORT_QUERY


def _report_records(
    record_id: str, images: list[str], report: str, per: str, meta: dict[str, Any]
) -> list[dict[str, Any]]:
    if per == "study":
        key = {"image": images[0]} if len(images) == 1 else {"images": images}
        return [{"id": record_id, **key, "conversations": conversation(report_turn(len(images)), report), **meta}]
    return [
        {
            "id": f"{record_id}/{Path(image).stem}",
            "image": image,
            "conversations": conversation(report_turn(1), report),
            **meta,
        }
        for image in images
    ]


def _frontal_dicoms(metadata: str) -> set[str]:
    frame = read_csv(metadata, "MIMIC-CXR-JPG metadata CSV", ("dicom_id", "ViewPosition"))
    return {d for d, v in zip(frame["dicom_id"], frame["ViewPosition"]) if v.strip().upper() in FRONTAL_VIEWS}


def _rewriter(
    rewrite_url: str | None, rewrite_model: str | None, sentence_pool: str | None, api_key_env: str, seed: int
) -> tuple[ReportRewriter | None, list[str]]:
    if not rewrite_url and not rewrite_model:
        return None, []
    if not sentence_pool:
        raise VilaM3Error("report rewriting needs --sentence_pool (one standard sentence per line)")
    return ReportRewriter(rewrite_url or "", rewrite_model or "", api_key_env=api_key_env, seed=seed), read_pool(
        sentence_pool
    )


def convert_mimic_reports(
    input: str,
    output: str,
    split: str = "train",
    per: str = "image",
    frontal_only: bool = False,
    metadata: str | None = None,
    image_root: str | None = None,
    rewrite_url: str | None = None,
    rewrite_model: str | None = None,
    sentence_pool: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    seed: int = 0,
) -> dict[str, Any]:
    """Convert the MIMIC-CXR R2Gen/DCL annotation JSON to report-generation records.

    Args:
        input: ``mimic_annotation.json`` / ``annotation.json``.
        output: record file; image paths as in ``image_path`` (relative to the MIMIC-CXR-JPG ``files`` folder).
        split: ``train``, ``val`` or ``test``.
        per: ``image`` (one record per image, as the reference) or ``study`` (one record with all images).
        frontal_only: keep PA/AP images only (needs ``metadata``); the reference trained on all views.
        metadata: MIMIC-CXR-JPG ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (``dicom_id``, ``ViewPosition``).
        image_root: folder the image paths are relative to; missing images are dropped when given.
        rewrite_url, rewrite_model: an OpenAI-compatible endpoint and model that rewrite each report toward the
            ``sentence_pool`` (off unless both are given).
        sentence_pool: text file with one standard sentence per line (see the ``report_sentence_pool`` verb).
        api_key_env: environment variable holding the endpoint's API key.
        seed: passed to the endpoint.
    """
    if per not in PER_OPTIONS:
        raise VilaM3Error(f"--per must be one of {PER_OPTIONS}, not {per!r}")
    data = read_json(input, "MIMIC-CXR annotation JSON")
    if not isinstance(data, dict) or not isinstance(data.get(split), list):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise VilaM3Error(f"annotation JSON {input} has no {split!r} list (found {found})")
    if frontal_only and not metadata:
        raise VilaM3Error("--frontal_only needs --metadata mimic-cxr-2.0.0-metadata.csv.gz (the view of each image)")
    frontal = _frontal_dicoms(metadata) if frontal_only else None
    rewriter, pool = _rewriter(rewrite_url, rewrite_model, sentence_pool, api_key_env, seed)
    tally = Tally(f"mimic_reports/{split}/{per}")
    records: list[dict[str, Any]] = []
    for index, item in enumerate(progress(data[split], f"mimic reports {split}")):
        tally.read += 1
        if not isinstance(item, dict):
            tally.drop("malformed item (not an object)", item)
            continue
        report = str(item.get("report") or "").strip()
        images = item.get("image_path")
        images = [images] if isinstance(images, str) else images
        if not report or not isinstance(images, list) or not images:
            tally.drop("malformed item (empty report or image_path)", item)
            continue
        images = [str(i) for i in images]
        if frontal is not None:
            for image in images:
                if Path(image).stem not in frontal:
                    tally.drop("not a frontal view (image)", image)
            images = [image for image in images if Path(image).stem in frontal]
            if not images:
                continue
        if rewriter is not None:
            try:
                report = rewriter.rewrite(report, pool)
            except RewriteError as err:
                tally.drop("rewrite failed", f"{item.get('id', index)}: {err}")
                continue
        meta = {"split": split, "source": "mimic_reports", "source_id": str(item.get("id", index))}
        records.extend(_report_records(str(item.get("id", index)), images, report, per, meta))
    return write_records(records, output, tally, image_root)


def report_sentence_pool(
    input: str,
    output: str,
    rewrite_url: str,
    rewrite_model: str,
    split: str = "train",
    chunk_size: int = 100,
    api_key_env: str = "OPENAI_API_KEY",
    seed: int = 0,
) -> dict[str, Any]:
    """Build the standard-sentence pool from one split of the annotation JSON with an LLM.

    The reference mined the pool from the **test** reports, letting test text shape the training targets; the
    default here is ``train``. The pool is written once, one sentence per line.
    """
    data = read_json(input, "MIMIC-CXR annotation JSON")
    if not isinstance(data, dict) or not isinstance(data.get(split), list):
        raise VilaM3Error(f"annotation JSON {input} has no {split!r} list")
    reports = [str(item.get("report") or "") for item in data[split] if isinstance(item, dict)]
    rewriter = ReportRewriter(rewrite_url, rewrite_model, api_key_env=api_key_env, seed=seed)
    pool = rewriter.build_pool(reports, chunk_size=chunk_size)
    if not pool:
        raise VilaM3Error("the endpoint returned an empty sentence pool")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text("\n".join(pool) + "\n", encoding="utf-8")
    return {"reports": len(reports), "sentences": len(pool), "output": str(output)}


# ------------------------------------------------------------------------------------------------ IU X-ray
def _iu_xml_documents(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, xml bytes)`` for every report in a ``.tgz`` archive or a folder, in file-name order."""
    if path.is_dir():
        for xml_path in sorted(path.rglob("*.xml")):
            yield xml_path.name, xml_path.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as archive:
            members = sorted(
                (m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")), key=lambda m: m.name
            )
            for member in members:
                handle = archive.extractfile(member)
                if handle is not None:
                    yield Path(member.name).name, handle.read()
    except tarfile.TarError as err:
        raise VilaM3Error(f"IU X-ray archive {path} could not be read ({err})") from err


def parse_iu_report(xml: bytes) -> dict[str, Any]:
    """The fields of one NLMCXR XML report: ``uid``, ``findings``, ``impression``, ``images`` (parentImage ids).

    Raises:
        ElementTree.ParseError: malformed XML.
    """
    root = ElementTree.fromstring(xml)
    sections = {}
    for node in root.iter("AbstractText"):
        sections[str(node.get("Label", "")).upper()] = " ".join((node.text or "").split())
    uid = root.find("uId")
    return {
        "uid": uid.get("id", "") if uid is not None else "",
        "findings": sections.get("FINDINGS", ""),
        "impression": sections.get("IMPRESSION", ""),
        "images": [node.get("id", "") for node in root.iter("parentImage") if node.get("id")],
    }


def convert_iu_xray(
    input: str | None = None,
    output: str = "iu_xray_reports.json",
    per: str = "study",
    image_ext: str = "png",
    image_root: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Convert the IU X-ray (NLMCXR) XML reports to report-generation records.

    The report is ``FINDINGS`` then ``IMPRESSION`` (whichever exist, joined by a space). Reports without either
    section, or without images, are dropped and counted.

    Args:
        input: ``NLMCXR_reports.tgz`` or its extracted folder; default: the copy shipped in ``torchxrayvision``.
        output: record file; images are ``<parentImage id>.<image_ext>`` (the NLMCXR_png names).
        per: ``study`` (one record per report with all its images) or ``image``.
        image_ext: extension of the image files (``png`` for NLMCXR_png).
        image_root: the image folder; missing images are dropped when given.
        seed: unused (nothing is drawn); accepted for a uniform command line.
    """
    del seed
    if per not in PER_OPTIONS:
        raise VilaM3Error(f"--per must be one of {PER_OPTIONS}, not {per!r}")
    path = Path(input) if input else shipped_data_file("NLMCXR_reports.tgz")
    if not path.exists():
        raise VilaM3Error(f"IU X-ray reports {path} do not exist; pass NLMCXR_reports.tgz or its extracted folder")
    tally = Tally(f"iu_xray/{per}")
    records: list[dict[str, Any]] = []
    for name, xml in progress(_iu_xml_documents(path), "iu_xray"):
        tally.read += 1
        try:
            fields = parse_iu_report(xml)
        except ElementTree.ParseError as err:
            tally.drop("malformed XML", f"{name}: {err}")
            continue
        report = " ".join(part for part in (fields["findings"], fields["impression"]) if part)
        if not report:
            tally.drop("no findings or impression", name)
            continue
        if not fields["images"]:
            tally.drop("no images", name)
            continue
        images = [f"{image_id}.{image_ext.lstrip('.')}" for image_id in fields["images"]]
        record_id = fields["uid"] or Path(name).stem
        meta = {"split": "all", "source": "iu_xray", "source_id": Path(name).stem}
        records.extend(_report_records(record_id, images, report, per, meta))
    return write_records(records, output, tally, image_root)
