#!/usr/bin/env python
"""Verify bundles the way the MONAI Model Zoo CI does, offline: ``python ci/verify_bundle.py <name>|--all``.

Structure, version/changelog, metadata against ci/schema/meta_schema_vila_m3.json, every config parses and its
references resolve, workflow properties, and network input/output shapes for the segmentation experts.
Exit status 1 when any bundle fails. The checks live in vila_m3_core.bundles.verify.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vila_m3_core.bundles.verify import ALL_BUNDLES, BUNDLES_DIR, verify_bundle  # noqa: E402
from vila_m3_core.errors import VilaM3Error  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="bundle names (folders of bundles/)")
    parser.add_argument("--all", action="store_true", help="verify every bundle")
    parser.add_argument("--bundles_dir", default=str(BUNDLES_DIR))
    parser.add_argument("--no_net_check", action="store_true", help="skip verify_net_in_out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = list(ALL_BUNDLES) if args.all else args.names
    if not names:
        parser.error("give bundle names or --all")
    failed = 0
    for name in names:
        try:
            report = verify_bundle(name, Path(args.bundles_dir), net_check=not args.no_net_check)
        except VilaM3Error as err:
            print(f"FAIL {name}: {err}")
            failed += 1
            continue
        status = "ok  " if report.ok else "FAIL"
        print(f"{status} {name} ({len(report.checked)} checks)")
        for problem in report.problems:
            print(f"     - {problem}")
        failed += not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
