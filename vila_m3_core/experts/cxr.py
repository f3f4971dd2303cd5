"""CXR expert: the TorchXRayVision ensemble of 8 classifiers (7 DenseNet-121 at 224 px + ResNet-50 at 512 px).

Models, weights files and preprocessing are torchxrayvision's own (``xrv.models.DenseNet/ResNet(weights=...,
cache_dir=...)``, ``xrv.datasets.normalize``, ``XRayCenterCrop``; each model resizes to its own resolution).
The ensemble averages, per class, the models of the reference's hand-picked subsets (``agent_protocol.md`` §3.1).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vila_m3_core.devices import resolve_device
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import Expert, ExpertRequest, ExpertResult, register_expert
from vila_m3_core.experts.runtime import Stopwatch
from vila_m3_core.imaging.loading import LoadedImage, load_any

logger = logging.getLogger(__name__)

#: The 8 torchxrayvision weights of the ensemble, in the reference's order.
CXR_MODELS: tuple[str, ...] = (
    "densenet121-res224-all",
    "densenet121-res224-chex",
    "densenet121-res224-mimic_ch",
    "densenet121-res224-mimic_nb",
    "densenet121-res224-nih",
    "densenet121-res224-pc",
    "densenet121-res224-rsna",
    "resnet50-res512-all",
)
_GROUP_2 = ("densenet121-res224-all", "densenet121-res224-chex", "densenet121-res224-pc", "resnet50-res512-all")
#: Classes averaged over a subset of the models (the reference's groups); every other class uses all 8.
CLASS_MODEL_SUBSETS: dict[str, tuple[str, ...]] = {
    "Pneumothorax": ("resnet50-res512-all",),
    "Lung Opacity": CXR_MODELS,
    "Atelectasis": _GROUP_2,
    "Cardiomegaly": _GROUP_2,
    "Consolidation": _GROUP_2,
    "Edema": _GROUP_2,
    "Effusion": _GROUP_2,
    "Fracture": ("densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-chex", "resnet50-res512-all"),
}


def models_for_class(class_name: str) -> tuple[str, ...]:
    """The models whose scores are averaged for ``class_name``."""
    return CLASS_MODEL_SUBSETS.get(class_name, CXR_MODELS)


def default_cache_dir() -> str:
    """torchxrayvision's weights folder (``~/.torchxrayvision/models_data/``)."""
    import torchxrayvision as xrv

    return xrv.utils.get_cache_dir()


def weights_file(model_name: str, cache_dir: str | None = None) -> Path:
    """The exact file torchxrayvision looks for: ``<cache_dir>/<basename of the release URL>``."""
    import torchxrayvision as xrv

    url = xrv.models.model_urls[model_name]["weights_url"]
    return Path(os.path.expanduser(cache_dir or default_cache_dir())) / os.path.basename(url)


def ensemble_scores(per_model: dict[str, np.ndarray], skip_untrained: bool = False) -> dict[str, float]:
    """Mean per class over the class's model subset.

    Args:
        per_model: model name -> 18 scores aligned to :data:`feedback.CXR_CLASSES`.
        skip_untrained: the reference averages in the constant 0.5 that torchxrayvision outputs for classes a
            model was not trained on (NaN operating point); ``True`` leaves those models out of that class's mean
            (the reference's unfinished ``valid_labels_model`` idea). Default ``False`` = reference numbers.
    """
    import torchxrayvision as xrv

    scores: dict[str, float] = {}
    for k, name in enumerate(feedback.CXR_CLASSES):
        models = models_for_class(name)
        if skip_untrained:
            trained = [m for m in models if xrv.models.model_urls[m]["labels"][k] == name]
            models = tuple(trained) or models
        scores[name] = float(np.mean([per_model[m][k] for m in models]))
    return scores


class CXRExpert(Expert):
    """The TorchXRayVision ensemble. The 8 networks are loaded on first use and kept.

    Args:
        cache_dir: folder holding the torchxrayvision weight files (default: torchxrayvision's cache dir).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        threshold: a class is "yes" above it (the reference trained with > 0.5).
        inclusive: ``True`` uses ``>=`` as the demo did; ``False`` (default) ``>`` as the training data.
        order: line order of the feedback: ``"sorted"`` (the demo, default) or ``"given"`` (training order).
        skip_untrained: see :func:`ensemble_scores`.
    """

    name = "CXR"

    def __init__(
        self,
        cache_dir: str | None = None,
        device: str = "auto",
        threshold: float = 0.5,
        inclusive: bool = False,
        order: str = "sorted",
        skip_untrained: bool = False,
    ) -> None:
        self.cache_dir = cache_dir
        self.device = resolve_device(device)
        self.threshold = threshold
        self.inclusive = inclusive
        self.order = order
        self.skip_untrained = skip_untrained
        self._models: dict[str, Any] | None = None

    # ------------------------------------------------------------------ loading
    def missing_weights(self) -> list[Path]:
        """Weight files not present in the cache dir."""
        return [weights_file(m, self.cache_dir) for m in CXR_MODELS if not weights_file(m, self.cache_dir).is_file()]

    def load(self) -> dict[str, Any]:
        """Build the 8 torchxrayvision models from the cache dir (once); never downloads.

        Raises:
            VilaM3Error: when weight files are missing (names the files, the URLs and the folder).
        """
        if self._models is not None:
            return self._models
        import torchxrayvision as xrv

        missing = self.missing_weights()
        if missing:
            folder = missing[0].parent
            urls = [
                xrv.models.model_urls[m]["weights_url"]
                for m in CXR_MODELS
                if not weights_file(m, self.cache_dir).is_file()
            ]
            raise VilaM3Error(
                f"TorchXRayVision weights missing in {folder}: {', '.join(p.name for p in missing)}. "
                f"torchxrayvision downloads them into its cache dir ({default_cache_dir()}) on first use, "
                f"or fetch them by hand (wget URL -O {folder}/<name>): {' '.join(urls)}"
            )
        models: dict[str, Any] = {}
        for name in CXR_MODELS:
            builder = xrv.models.ResNet if name.startswith("resnet") else xrv.models.DenseNet
            try:
                model = builder(weights=name, cache_dir=self.cache_dir)
            except Exception as err:  # noqa: BLE001 - torchxrayvision raises plain Exception on a bad file
                raise VilaM3Error(f"Cannot load {weights_file(name, self.cache_dir)}: {err}") from err
            models[name] = model.to(self.device).eval()
        self._models = models
        return models

    # ------------------------------------------------------------------ inference
    @staticmethod
    def preprocess(picture: np.ndarray) -> np.ndarray:
        """torchxrayvision preprocessing: ``normalize(img, maxval)`` to [-1024, 1024], first channel, centre crop.

        Args:
            picture: ``(rows, cols)`` or ``(rows, cols, channels)`` pixel values (8-bit, or 16-bit scaled by 65535).

        Returns:
            ``(1, S, S)`` float32, S = min(rows, cols); each model resizes it to its own resolution.
        """
        import torchxrayvision as xrv

        picture = np.asarray(picture, dtype=np.float32)
        if picture.ndim > 2:
            picture = picture[:, :, 0]
        if picture.ndim < 2:
            raise VilaM3Error(f"A chest X-ray must be a 2D image; got shape {picture.shape}.")
        maxval = 255.0 if float(picture.max()) <= 255.0 else 65535.0  # the reference assumed 8 bit
        normalised = xrv.datasets.normalize(picture, maxval)
        return xrv.datasets.XRayCenterCrop()(normalised[None, ...]).astype(np.float32)

    def predict_scores(self, picture: np.ndarray) -> dict[str, float]:
        """Ensemble probability per class (18 classes, :data:`feedback.CXR_CLASSES` order) for one picture."""
        import torch

        models = self.load()
        batch = torch.from_numpy(self.preprocess(picture))[None].to(self.device)
        per_model: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for name, model in models.items():
                # torchxrayvision prints a resize notice per model; keep stdout clean (JSON-writing CLIs) and log it
                with contextlib.redirect_stdout(io.StringIO()) as printed:
                    out = model(batch)[0].float().cpu().numpy()
                if printed.getvalue().strip():
                    logger.debug("%s: %s", name, printed.getvalue().strip())
                if out.shape[0] != len(feedback.CXR_CLASSES):
                    raise VilaM3Error(f"{name} returned {out.shape[0]} scores, expected {len(feedback.CXR_CLASSES)}.")
                per_model[name] = out
        return ensemble_scores(per_model, self.skip_untrained)

    def predict_files(self, paths: Sequence[str | Path]) -> dict[str, dict[str, float]]:
        """Scores for many picture files (path -> class -> score), with a progress bar."""
        from tqdm import tqdm

        return {str(p): self.predict_scores(_picture(load_any(p))) for p in tqdm(paths, desc="CXR ensemble")}

    def run(self, request: ExpertRequest) -> ExpertResult:
        """Classify the chest X-ray in ``request`` and return the yes/no feedback plus the instruction."""
        watch = Stopwatch()
        with watch("load"):
            image = request.volume if isinstance(request.volume, LoadedImage) else load_any(request.image)
            self.load()
        with watch("inference"):
            scores = self.predict_scores(_picture(image))
        findings = feedback.cxr_findings(scores, self.threshold, self.inclusive)
        return ExpertResult(
            text=feedback.cxr_feedback(findings, self.order),
            instruction=feedback.instruction(request.prompt),
            seconds=watch.seconds,
            data={"scores": scores, "findings": findings, "threshold": self.threshold, "inclusive": self.inclusive},
        )


def _picture(image: LoadedImage) -> np.ndarray:
    if image.is_3d:
        raise VilaM3Error(f"The CXR expert needs a 2D chest X-ray picture; {image.source} is a 3D volume.")
    return image.grey_2d()


register_expert("CXR", CXRExpert)


def predict_folder(
    image_dir: str | Path,
    output_json: str | Path,
    cache_dir: str | None = None,
    device: str = "auto",
    recursive: bool = True,
    suffixes: Sequence[str] = (".png", ".jpg", ".jpeg"),
) -> dict[str, Any]:
    """Run the ensemble over every picture under ``image_dir`` and write ``{relative path: {class: score}}``.

    Scores are the ensemble means in [0, 1], classes in :data:`feedback.CXR_CLASSES` order. Pictures that cannot be
    read are counted, logged and listed in the returned summary (never silently dropped).

    Returns:
        ``{"scored": n, "failed": {relative path: error}, "output": path}``.
    """
    import json

    from tqdm import tqdm

    root = Path(image_dir)
    if not root.is_dir():
        raise VilaM3Error(f"Not a folder: {root}")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise VilaM3Error(f"No {'/'.join(suffixes)} pictures under {root}.")
    expert = CXRExpert(cache_dir=cache_dir, device=device)
    expert.load()  # fail fast on missing weights, before the loop
    scores: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    for path in tqdm(files, desc="CXR ensemble"):
        key = path.relative_to(root).as_posix()
        try:
            scores[key] = expert.predict_scores(_picture(load_any(path)))
        except VilaM3Error as err:
            failed[key] = str(err)
    if failed:
        logger.warning("CXR predict: %d of %d pictures could not be scored: %s", len(failed), len(files), failed)
    output = Path(output_json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(scores, indent=1))
    return {"scored": len(scores), "failed": failed, "output": str(output)}
