"""``large_files.yml`` helpers: fill in missing hashes after one trusted download.

Only two of the eight TorchXRayVision weight hashes could be confirmed offline; after
``python -m monai.bundle download_large_files --bundle_path bundles/expert_cxr`` (from a trusted network),
:func:`pin_hashes` writes the hash of each downloaded file into the empty ``hash_val`` fields, keeping comments.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from vila_m3_core.errors import VilaM3Error


def file_hash(path: str | Path, hash_type: str = "sha256") -> str:
    """Hex digest of a file (read in 1 MiB chunks)."""
    digest = hashlib.new(hash_type, usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pin_hashes(bundle_dir: str | Path) -> list[str]:
    """Fill empty ``hash_val`` entries of ``<bundle_dir>/large_files.yml`` from the downloaded files.

    Returns the paths whose hash was written. Entries whose file is not downloaded are left empty and reported in
    the log of the caller (returned list excludes them). Existing hashes are never changed.
    """
    yml = Path(bundle_dir) / "large_files.yml"
    if not yml.is_file():
        raise VilaM3Error(f"{yml} not found.")
    lines = yml.read_text().splitlines()
    pinned: list[str] = []
    current_path, current_type = None, "sha256"
    for index, line in enumerate(lines):
        path_match = re.match(r'\s*-\s*path:\s*"([^"]+)"', line)
        if path_match:
            current_path = path_match.group(1)
            # the hash_type normally follows hash_val; look ahead within this entry
            for follow in lines[index + 1 : index + 5]:
                type_match = re.match(r'\s*hash_type:\s*"(\w+)"', follow)
                if type_match:
                    current_type = type_match.group(1)
                    break
            continue
        if current_path and re.match(r'\s*hash_val:\s*""\s*$', line):
            target = Path(bundle_dir) / current_path
            if target.is_file():
                lines[index] = line.replace('""', f'"{file_hash(target, current_type)}"')
                pinned.append(current_path)
    yml.write_text("\n".join(lines) + "\n")
    return pinned
