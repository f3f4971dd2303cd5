#!/usr/bin/env python
"""Package bundles as reproducible ``<name>_v<version>.zip`` plus ``model_info.json`` (Model Zoo layout).

    python ci/package_bundles.py --all --out_dir dist/bundles --base_url https://github.com/<org>/<repo>/releases/download/<tag>

``monai.bundle.download(name=..., version=..., url=<base_url>/<name>_v<version>.zip)`` or
``source="github", repo="<org>/<repo>/<tag>"`` then fetch them. The logic is vila_m3_core.bundles.packaging.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vila_m3_core.bundles.packaging import package_bundle, write_model_info  # noqa: E402
from vila_m3_core.bundles.verify import ALL_BUNDLES, BUNDLES_DIR  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--bundles_dir", default=str(BUNDLES_DIR))
    parser.add_argument("--out_dir", default="dist/bundles")
    parser.add_argument("--base_url", required=True, help="URL the zips will be published under")
    args = parser.parse_args(argv)
    names = list(ALL_BUNDLES) if args.all else args.names
    if not names:
        parser.error("give bundle names or --all")
    archives = [package_bundle(Path(args.bundles_dir) / name, args.out_dir) for name in names]
    write_model_info(archives, Path(args.out_dir) / "model_info.json", args.base_url)
    for archive in archives:
        print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
