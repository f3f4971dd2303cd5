"""Expert cold first call vs cached second call (target: second call >= 5x faster).

The reference rebuilt every expert network on every prompt, so each of its calls cost what our *first* call costs;
our experts keep the network, so later calls pay inference only. The whole-call ratio depends on how much
inference costs next to loading: on a CPU inference dominates for small inputs, so the "load" columns isolate
what caching removes (network build + weights), which is nearly the whole gain on a GPU. Weights are random (same architectures and file
formats as the released ones), written to a temporary folder; nothing is downloaded.

    .venv/bin/python benchmarks/bench_experts.py [--device cpu|cuda] [--experts cxr,vista3d,brats] [--full]

``--full`` uses the released VISTA3D width (48) and the bundles' sliding-window sizes (slow on CPU); the default uses
VISTA3D width 8 and small rois so the whole run takes about a minute on a laptop CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vila_m3_core.experts.base import ExpertRequest  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _cold_and_warm(build, request) -> tuple[float, float, float, float]:
    """Seconds of a first call on a fresh expert (build + load + infer) and of a later call, whole and for the
    "load" phase alone (network build + weights + image read on the first call; image read only later)."""
    build().run(request)  # untimed: warms the process (kernel selection, allocator), as in a long-running server
    expert = build()
    cold, first = _timed(lambda: expert.run(request))  # what every reference call cost: build + load + infer
    warm, later = _timed(lambda: expert.run(request))
    return cold, warm, first.seconds["load"], later.seconds["load"]


def bench_cxr(tmp: Path, device: str, full: bool) -> tuple[float, float, float, float]:
    import torch
    import torchvision
    import torchxrayvision as xrv
    from PIL import Image

    from vila_m3_core.experts.cxr import CXR_MODELS, CXRExpert, weights_file

    cache = tmp / "xrv"
    cache.mkdir()
    for name in CXR_MODELS:  # separate files, as on disk for real (no hard links: loading cost is part of cold)
        if name.startswith("densenet"):
            torch.save(xrv.models.DenseNet(num_classes=18), weights_file(name, str(cache)))
    resnet = torchvision.models.resnet50(num_classes=18, weights=None)
    resnet.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    torch.save(resnet.state_dict(), weights_file("resnet50-res512-all", str(cache)))
    picture = tmp / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)).save(picture)
    request = ExpertRequest(image=str(picture), prompt="Any finding?")
    return _cold_and_warm(lambda: CXRExpert(cache_dir=str(cache), device=device), request)


def bench_vista3d(tmp: Path, device: str, full: bool) -> tuple[float, float, float, float]:
    import nibabel as nib

    from vila_m3_core.bundles.synthetic import write_vista3d_weights
    from vila_m3_core.experts.vista3d import Vista3DExpert

    width, roi = (48, (128, 128, 128)) if full else (8, (64, 64, 64))
    weights = write_vista3d_weights(tmp / "vista3d.pt", encoder_embed_dim=width)
    volume = np.random.default_rng(0).normal(40, 300, (96, 96, 64)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([1.5, 1.5, 1.5, 1.0])), str(tmp / "ct.nii.gz"))
    request = ExpertRequest(image=str(tmp / "ct.nii.gz"), args="hepatic tumor", output_dir=str(tmp / "out"))
    config = {"weights": str(weights), "device": device, "roi_size": roi, "encoder_embed_dim": width}
    return _cold_and_warm(lambda: Vista3DExpert(**config), request)


def bench_brats(tmp: Path, device: str, full: bool) -> tuple[float, float, float, float]:
    import nibabel as nib

    from vila_m3_core.bundles.synthetic import write_brats_weights
    from vila_m3_core.experts.brats import BratsExpert

    roi = (240, 240, 160) if full else (64, 64, 64)
    weights = write_brats_weights(tmp / "brats.pt")
    rng = np.random.default_rng(0)
    paths = []
    for name in ("t1ce", "t1", "t2", "flair"):
        path = tmp / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(rng.normal(100, 20, (64, 64, 48)).astype(np.float32), np.eye(4)), str(path))
        paths.append(str(path))
    request = ExpertRequest(image=paths, output_dir=str(tmp / "out"))
    config = {"weights": str(weights), "device": device, "roi_size": roi}
    return _cold_and_warm(lambda: BratsExpert(**config), request)


BENCHES = {"cxr": bench_cxr, "vista3d": bench_vista3d, "brats": bench_brats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--experts", default="cxr,vista3d,brats")
    parser.add_argument("--full", action="store_true", help="released VISTA3D width and bundle roi sizes")
    args = parser.parse_args()
    # import the libraries first: a long-running process has them loaded, and the reference paid them once too
    import monai.apps.vista3d.transforms  # noqa: F401
    import monai.inferers  # noqa: F401
    import monai.transforms  # noqa: F401
    import skimage.color  # noqa: F401
    import torchxrayvision  # noqa: F401

    print(f"device={args.device} full={args.full} threads={os.cpu_count()}")
    print(
        f"{'expert':<8} {'first call s':>12} {'cached call s':>13} {'ratio':>6}   "
        f"{'first load s':>12} {'cached load s':>13} {'ratio':>6}   (target: cached >= 5x faster)"
    )
    sys.stdout.flush()
    for name in args.experts.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            cold, warm, cold_load, warm_load = BENCHES[name](Path(tmp), args.device, args.full)
        print(
            f"{name:<8} {cold:>12.2f} {warm:>13.2f} {cold / warm:>5.1f}x   "
            f"{cold_load:>12.2f} {warm_load:>13.2f} {cold_load / warm_load:>5.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
