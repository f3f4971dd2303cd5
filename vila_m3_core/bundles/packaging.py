"""Model-Zoo-style distribution: reproducible ``<name>_v<version>.zip`` archives and ``model_info.json``.

The archive holds one top-level folder named after the bundle (what ``monai.bundle.download`` extracts), files in
sorted order with a fixed timestamp and permissions, so the same bundle always gives the same bytes and checksum.
Weights are not packed: they are fetched with ``download_large_files`` from the URLs in ``large_files.yml``
(VLM weights come from the Hugging Face Hub).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path

from vila_m3_core.errors import VilaM3Error

#: fixed member timestamp (the zip format's earliest date) so archives are byte-reproducible
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: folders and files that never go into an archive (run outputs, caches, downloaded weights)
EXCLUDED_PARTS = {"eval", "__pycache__", ".pytest_cache", "mlruns"}


def bundle_version(bundle_dir: str | Path) -> str:
    """The ``version`` of ``<bundle_dir>/configs/metadata.json``."""
    meta = Path(bundle_dir) / "configs" / "metadata.json"
    if not meta.is_file():
        raise VilaM3Error(f"{meta} not found: {bundle_dir} is not a bundle folder.")
    return str(json.loads(meta.read_text())["version"])


def bundle_files(bundle_dir: str | Path) -> list[Path]:
    """Files that belong in the archive, sorted: everything except run outputs, caches and ``models/`` weights."""
    root = Path(bundle_dir)
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or EXCLUDED_PARTS & set(rel.parts) or path.suffix in (".pyc", ".db"):
            continue
        if rel.parts[0] == "models" and path.name != ".gitkeep":
            continue
        files.append(path)
    return files


def package_bundle(bundle_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` (top folder ``<name>/``) and return its path."""
    root = Path(bundle_dir).resolve()
    name = root.name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{name}_v{bundle_version(root)}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in bundle_files(root):
            info = zipfile.ZipInfo(f"{name}/{path.relative_to(root).as_posix()}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever machine builds it
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return archive


def sha1sum(path: str | Path) -> str:
    """Hex SHA-1 of a file (the checksum the Model Zoo's model_info.json records)."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_model_info(archives: Iterable[str | Path], out_file: str | Path, base_url: str) -> dict[str, dict[str, str]]:
    """Write ``model_info.json``: ``{"<name>_v<version>": {"checksum": sha1, "source": "<base_url>/<zip name>"}}``.

    Args:
        archives: zips made by :func:`package_bundle`.
        out_file: where to write (merged with an existing file, so released versions stay listed).
        base_url: where the zips are published (e.g. a GitHub release download URL, or ``file:///...`` in tests).
    """
    out_file = Path(out_file)
    info = json.loads(out_file.read_text()) if out_file.is_file() else {}
    for archive in archives:
        archive = Path(archive)
        info[archive.stem] = {"checksum": sha1sum(archive), "source": f"{base_url.rstrip('/')}/{archive.name}"}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(dict(sorted(info.items())), indent=4) + "\n")
    return info
