"""TorchXRayVision pieces of the ``expert_cxr`` bundle: the ensemble as a network for MONAI's evaluator, the chest
X-ray loading transform, the scores writer, and the fine-tuning helpers (label CSV, masked BCE, per-class AUC).

The ensemble itself (models, subsets, preprocessing) is :mod:`vila_m3_core.experts.cxr`; this module only adapts
it to MONAI engines.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback
from vila_m3_core.experts.cxr import CXRExpert, ensemble_scores, weights_file

logger = logging.getLogger(__name__)

#: the 18 TorchXRayVision output classes, in output-channel order
CXR_CLASSES: tuple[str, ...] = tuple(feedback.CXR_CLASSES)


class CxrEnsembleNetwork(torch.nn.Module):
    """The 8-model TorchXRayVision ensemble as one module: ``[B, 1, S, S]`` normalised image -> ``[B, 18]`` scores.

    The weights are read from ``cache_dir`` (the bundle's ``models/xrv``) on first forward; nothing is downloaded.

    Args:
        cache_dir: folder holding the eight torchxrayvision weight files.
        device: where the models run.
        skip_untrained: see :func:`vila_m3_core.experts.cxr.ensemble_scores`.
    """

    def __init__(self, cache_dir: str, device: str | torch.device = "cpu", skip_untrained: bool = False) -> None:
        super().__init__()
        self.expert = CXRExpert(cache_dir=str(cache_dir), device=str(device), skip_untrained=skip_untrained)

    def check_weights(self) -> None:
        """Raise :class:`VilaM3Error` naming the missing weight files and the download command."""
        missing = self.expert.missing_weights()
        if missing:
            bundle = Path(self.expert.cache_dir).parent.parent
            raise VilaM3Error(
                f"TorchXRayVision weights missing in {missing[0].parent}: {', '.join(p.name for p in missing)}. "
                f"Download them with `python -m monai.bundle download_large_files --bundle_path {bundle}`."
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Ensemble probabilities ``[B, 18]`` for normalised images ``[B, 1, S, S]`` (values in [-1024, 1024])."""
        self.check_weights()
        models = self.expert.load()
        per_model = {name: model(images.to(self.expert.device)).float().cpu().numpy() for name, model in models.items()}
        rows = []
        for b in range(images.shape[0]):
            scores = ensemble_scores({name: out[b] for name, out in per_model.items()}, self.expert.skip_untrained)
            rows.append([scores[c] for c in CXR_CLASSES])
        return torch.tensor(rows, dtype=torch.float32, device=images.device)


def load_cxr(path: str) -> torch.Tensor:
    """Read a chest X-ray (PNG/JPEG/DICOM) and apply torchxrayvision's preprocessing -> ``[1, S, S]`` float32.

    Raises:
        VilaM3Error: unreadable file, or a 3D volume instead of a 2D picture.
    """
    from vila_m3_core.imaging.loading import load_any

    try:
        image = load_any(path)
    except VilaM3Error:
        raise
    except Exception as err:  # the loaders raise several types for corrupt files
        raise VilaM3Error(f"Cannot read {path} as a chest X-ray image ({type(err).__name__}: {err}).") from err
    if image.is_3d:
        raise VilaM3Error(f"{path} is a 3D volume; the CXR expert needs a 2D chest X-ray (PNG, JPEG or DICOM).")
    return torch.from_numpy(CXRExpert.preprocess(image.grey_2d()))


def write_scores(data: dict[str, Any], output_dir: str, threshold: float = 0.5) -> dict[str, Any]:
    """Postprocessing step: write ``<output_dir>/<image stem>_cxr.json`` with per-class scores and yes/no findings.

    Args:
        data: one decollated item with ``pred`` (18 scores) and ``image_path``.
        output_dir: destination folder (created).
        threshold: a finding is "yes" when its score is above it (the reference's training rule, ``>``).
    """
    scores = {c: float(s) for c, s in zip(CXR_CLASSES, torch.as_tensor(data["pred"]).reshape(-1).tolist())}
    findings = feedback.cxr_findings(scores, threshold, False)
    name = Path(str(data["image_path"])).name.split(".")[0]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}_cxr.json"
    path.write_text(
        json.dumps(
            {"image": str(data["image_path"]), "scores": scores, "findings": findings, "threshold": threshold}, indent=2
        )
    )
    logger.info("wrote %s", path)
    data["scores_file"] = str(path)
    return data


def read_label_csv(csv_file: str, image_root: str | None = None, image_column: str = "image") -> list[dict[str, Any]]:
    """Datalist from a CSV of labels: one row per image, a column per finding (1 positive, 0 negative, empty unknown).

    Column names are matched to the 18 TorchXRayVision classes case-insensitively (``_`` = space). Unknown columns
    are logged; unknown values (empty, NaN, -1 "uncertain") become NaN and are left out of the loss and AUC.

    Returns:
        ``[{"image": path, "label": float32 array (18,)}, ...]``
    """
    path = Path(csv_file)
    if not path.is_file():
        raise VilaM3Error(f"Label CSV {path} not found (pass --dataset_dir or --train_csv).")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if image_column not in columns:
            raise VilaM3Error(f"{path} has no {image_column!r} column; columns: {columns}.")
        norm = {c.lower().replace("_", " "): i for i, c in enumerate(CXR_CLASSES)}
        mapping = {col: norm[col.lower().replace("_", " ")] for col in columns if col.lower().replace("_", " ") in norm}
        ignored = [c for c in columns if c != image_column and c not in mapping]
        if not mapping:
            raise VilaM3Error(f"{path} has no finding columns; expected some of: {', '.join(CXR_CLASSES)}.")
        if ignored:
            logger.warning(
                "%s: ignoring %d columns that are not TorchXRayVision classes: %s", path, len(ignored), ignored
            )
        items, unknown = [], 0
        for row in reader:
            label = np.full(len(CXR_CLASSES), np.nan, dtype=np.float32)
            for col, k in mapping.items():
                value = (row.get(col) or "").strip()
                if value in ("0", "1", "0.0", "1.0"):
                    label[k] = float(value)
                else:
                    unknown += 1
            image = Path(row[image_column])
            if image_root and not image.is_absolute():
                image = Path(image_root) / image
            items.append({"image": str(image), "label": label})
    logger.info("%s: %d images, %d unknown/uncertain label values left out of loss and AUC", path, len(items), unknown)
    if not items:
        raise VilaM3Error(f"{path} has no rows.")
    return items


class MaskedBCEWithLogitsLoss(torch.nn.Module):
    """Binary cross-entropy over the known labels only: NaN targets (unknown findings) contribute nothing."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``, ``target``: ``[B, 18]``; returns the mean over known entries (0 if none is known)."""
        known = ~torch.isnan(target)
        if not known.any():
            return logits.sum() * 0.0
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[known], target[known])


def finetune_densenet(
    weights: str | None, cache_dir: str | None, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16)
) -> torch.nn.Module:
    """A TorchXRayVision DenseNet ready for fine-tuning: pretrained ``weights`` from ``cache_dir`` (or random with
    ``weights`` None/``"random"``; MONAI drops ``None`` CLI overrides, so the CLI spelling is ``random``), with the operating-point normalisation switched off so that the output is logits ``[B, 18]``.
    ``growth_rate`` / ``block_config`` only matter for random initialisation (tests use a narrow DenseNet)."""
    import torchxrayvision as xrv

    if weights and str(weights).lower() not in ("none", "random"):
        if not weights_file(weights, cache_dir).is_file():
            raise VilaM3Error(
                f"Pretrained weights {weights_file(weights, cache_dir)} missing; run "
                "`python -m monai.bundle download_large_files --bundle_path <bundle>` or pass --pretrained_weights random."
            )
        model = xrv.models.DenseNet(weights=weights, cache_dir=cache_dir)
    else:
        model = xrv.models.DenseNet(
            weights=None, num_classes=len(CXR_CLASSES), growth_rate=growth_rate, block_config=tuple(block_config)
        )
    model.op_threshs = None  # raw logits for the loss; probabilities come from the sigmoid in postprocessing
    model.apply_sigmoid = False
    return model


class PerClassAUC(Metric):
    """Ignite metric: ROC AUC per finding over the known labels, mean over the classes that have both outcomes.

    ``engine.state.metrics[name]`` holds the mean; ``<name>_<class>`` (spaces -> ``_``) each class's AUC. Classes
    with a single outcome in the data are skipped and counted in the log.
    """

    def reset(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, output: Sequence[Any]) -> None:
        preds, labels = output
        self._preds.extend(torch.as_tensor(p).detach().float().reshape(1, -1).cpu() for p in preds)
        self._labels.extend(torch.as_tensor(y).detach().float().reshape(1, -1).cpu() for y in labels)

    def per_class(self) -> dict[str, float]:
        """AUC per class for the classes that have positives and negatives among the known labels."""
        import ignite.distributed as idist
        from sklearn.metrics import roc_auc_score

        preds = idist.all_gather(torch.cat(self._preds)) if self._preds else torch.zeros(0, len(CXR_CLASSES))
        labels = idist.all_gather(torch.cat(self._labels)) if self._labels else torch.zeros(0, len(CXR_CLASSES))
        result, skipped = {}, []
        for k, name in enumerate(CXR_CLASSES):
            known = ~torch.isnan(labels[:, k])
            y = labels[known, k].numpy()
            if len(set(y.tolist())) < 2:
                skipped.append(name)
                continue
            result[name] = float(roc_auc_score(y, preds[known, k].numpy()))
        if skipped:
            logger.info("AUC: %d classes without both outcomes skipped", len(skipped))
        return result

    def compute(self) -> float:
        values = list(self.per_class().values())
        return float(np.mean(values)) if values else math.nan

    def completed(self, engine: Any, name: str) -> None:
        per_class = self.per_class()
        engine.state.metrics[name] = float(np.mean(list(per_class.values()))) if per_class else math.nan
        for cls, value in per_class.items():
            engine.state.metrics[f"{name}_{cls.lower().replace(' ', '_')}"] = value
