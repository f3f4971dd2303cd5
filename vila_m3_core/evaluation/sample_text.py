"""Real radiology report text that ships with ``torchxrayvision``: the Indiana University (NLMCXR) reports.

Used by the metric tests and benchmarks (no download needed). Each report is the FINDINGS and IMPRESSION sections
joined with a space; reports with neither are skipped.
"""

from __future__ import annotations

import functools
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from vila_m3_core.errors import VilaM3Error


def iu_reports_archive() -> Path:
    """Path of ``torchxrayvision/data/NLMCXR_reports.tgz`` (raises :class:`VilaM3Error` when not installed)."""
    try:
        import torchxrayvision
    except ImportError as err:
        raise VilaM3Error("torchxrayvision is not installed; pip install 'vila-m3[experts]'") from err
    path = Path(torchxrayvision.__file__).parent / "data" / "NLMCXR_reports.tgz"
    if not path.is_file():
        raise VilaM3Error(f"{path} is missing from the torchxrayvision install")
    return path


def load_iu_reports(archive: str | Path | None = None) -> dict[str, str]:
    """Read the IU X-ray reports: ``{report file stem: findings + " " + impression}`` (whitespace collapsed).

    Parsed once per archive and process (the 3,955 XML files take seconds); each call returns a fresh dict.
    """
    return dict(_parse_reports(str(archive or iu_reports_archive())))


@functools.lru_cache(maxsize=2)
def _parse_reports(archive: str) -> tuple[tuple[str, str], ...]:
    reports: dict[str, str] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            root = ET.parse(tar.extractfile(member)).getroot()
            parts = [
                (node.text or "").strip()
                for node in root.iter("AbstractText")
                if node.get("Label") in ("FINDINGS", "IMPRESSION")
            ]
            text = " ".join(" ".join(p for p in parts if p).split())
            if text:
                reports[Path(member.name).stem] = text
    return tuple(reports.items())
