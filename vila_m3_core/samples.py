"""Sample inputs that ship with installed packages (no download): ``python -m vila_m3_core.samples out.png``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from vila_m3_core.errors import VilaM3Error


def sample_ct_slice(out_path: str | Path) -> Path:
    """Write pydicom's bundled ``CT_small.dcm`` (a real 128x128 CT slice) as a soft-tissue-window PNG.

    The window is the reference's (centre 50 HU, width 400 HU) mapped to 0..255.
    """
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        raise VilaM3Error("The sample needs pydicom: pip install 'vila-m3[experts]'.") from None
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = dataset.pixel_array.astype(np.float32) * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    grey = np.clip((hu - (50 - 200)) / 400 * 255, 0, 255).astype(np.uint8)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey).convert("RGB").save(out)
    return out


if __name__ == "__main__":
    print(sample_ct_slice(sys.argv[1] if len(sys.argv) > 1 else "sample_ct.png"))
