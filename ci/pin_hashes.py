#!/usr/bin/env python
"""Write the hashes of downloaded large files into empty ``hash_val`` fields of a bundle's large_files.yml.

python -m monai.bundle download_large_files --bundle_path bundles/expert_cxr   # once, from a trusted network
python ci/pin_hashes.py expert_cxr
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vila_m3_core.bundles.large_files import pin_hashes  # noqa: E402
from vila_m3_core.bundles.verify import BUNDLES_DIR  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for path in pin_hashes(BUNDLES_DIR / sys.argv[1]):
        print(f"pinned {path}")
