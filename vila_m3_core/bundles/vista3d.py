"""VISTA3D Ignite engines for the ``expert_vista3d`` bundle: inferer, evaluator (user prompts or validation) and a
fine-tuning trainer with prompt sampling, built on MONAI's ``SupervisedEvaluator`` / ``SupervisedTrainer`` the way
the Model Zoo ``vista3d`` bundle does, without bundle-local scripts.

Shapes: images are ``[1, C, H, W, D]`` (batch size 1, as in the Zoo bundle); VISTA3D returns one logit channel per
prompt, ``[1, P, H, W, D]`` with ``transpose=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.vista3d.inferer import point_based_window_inferer
from monai.apps.vista3d.sampler import sample_prompt_pairs
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer, sliding_window_inference
from monai.transforms import reset_ops_id
from monai.utils.enums import CommonKeys as Keys

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.labels import everything_labels

logger = logging.getLogger(__name__)

#: the 117 classes of "segment everything" (Zoo vista3d ``everything_labels``), from the experts' label data
EVERYTHING_LABELS = everything_labels()


def _point_head(network: torch.nn.Module) -> torch.nn.Module:
    """The point head of a VISTA3D network, also when it is wrapped in DDP."""
    return network.module.point_head if hasattr(network, "module") else network.point_head


class Vista3dInferer(Inferer):
    """Sliding-window VISTA3D inference; point-centred windows when points are given and ``use_point_window``.

    Args:
        roi_size: window size in voxels, e.g. ``[128, 128, 128]``.
        overlap: window overlap ratio.
        sw_batch_size: windows per forward pass.
        use_point_window: crop windows around the clicked points instead of sweeping the whole volume.
    """

    def __init__(
        self, roi_size: Sequence[int], overlap: float = 0.3, sw_batch_size: int = 1, use_point_window: bool = False
    ) -> None:
        super().__init__()
        self.roi_size = roi_size
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size
        self.use_point_window = use_point_window

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: torch.nn.Module,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        class_vector: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        label_set: Sequence[int] | None = None,
        prev_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return logits ``[1, P, H, W, D]`` for ``P`` prompts (classes in ``class_vector`` or one point object)."""
        prompt_class = None if class_vector is None else class_vector.clone()
        # zero-shot classes (index above the last supported one) are segmented from points only
        if class_vector is not None and torch.any(class_vector > _point_head(network).last_supported):
            class_vector = None
        arguments = {
            "inputs": inputs,
            "roi_size": self.roi_size,
            "sw_batch_size": self.sw_batch_size,
            "transpose": True,
            "predictor": network,
            "mode": "gaussian",
            "overlap": self.overlap,
            "point_coords": point_coords,
            "point_labels": point_labels,
            "class_vector": class_vector,
            "prompt_class": prompt_class,
            "prev_mask": prev_mask,
            "labels": labels,
            "label_set": label_set,
        }
        if self.use_point_window and point_coords is not None:
            return point_based_window_inferer(**arguments)
        return stitch_on_cpu_when_out_of_memory(sliding_window_inference, arguments)


def stitch_on_cpu_when_out_of_memory(infer: Any, arguments: dict[str, Any]) -> torch.Tensor:
    """``infer(**arguments)``; when CUDA runs out of memory, again with the windows on the GPU and the stitched
    output on the CPU. "Everything" keeps 117 full-size logit channels, more than a GPU holds for a large CT;
    MONAI's ``SlidingWindowInfererAdapt`` makes the same fallback."""
    try:
        return infer(**arguments)
    except torch.cuda.OutOfMemoryError:
        inputs = arguments["inputs"]
        if inputs.device.type != "cuda":
            raise
        logger.warning("CUDA out of memory while stitching VISTA3D windows; stitching on the CPU instead")
        torch.cuda.empty_cache()
        return infer(**{**arguments, "sw_device": inputs.device, "device": torch.device("cpu")})


def _prompt_tensor(label_prompt: Any, everything_labels: Sequence[int] | None) -> list[int]:
    """Collated label prompt (list of 1-element tensors, or None) -> list of ints; None -> everything."""
    if label_prompt is None:
        if everything_labels is None:
            raise VilaM3Error("No label prompt given: pass --label_prompt (names or indices) or 'everything'.")
        return list(everything_labels)
    values = [int(torch.as_tensor(v).reshape(-1)[0]) for v in label_prompt]
    if any(v >= 255 or v < 0 for v in values):
        raise VilaM3Error(f"VISTA3D label prompts must be in 0..254; got {values}.")
    return values


class Vista3dEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` for VISTA3D.

    With ``user_prompt=True`` (inference) it reads ``label_prompt`` (class indices) and optional ``points`` /
    ``point_labels`` from each item; with no prompt it segments ``everything_labels``. With ``user_prompt=False``
    (validation) it prompts every class of ``val_label_set`` and needs ``label`` in the batch.

    Args:
        user_prompt: inference from user prompts (True) or validation against labels (False).
        everything_labels: classes for "segment everything"; ``None`` makes a missing prompt an error.
        val_label_set: global class indices prompted during validation.
        **kwargs: passed to :class:`monai.engines.SupervisedEvaluator`.
    """

    def __init__(
        self,
        *args: Any,
        user_prompt: bool = True,
        everything_labels: Sequence[int] | None = tuple(EVERYTHING_LABELS),
        val_label_set: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user_prompt = user_prompt
        self.everything_labels = everything_labels
        self.val_label_set = val_label_set

    @staticmethod
    def _transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Map ``[B, N, 3]`` points with a 4x4 ``affine`` (original voxel space -> preprocessed voxel space)."""
        homogeneous = np.concatenate([points, np.ones((*points.shape[:2], 1))], axis=-1)
        return np.einsum("ij,bnj->bni", affine, homogeneous)[..., :3]

    def _iteration(self, engine: SupervisedEvaluator, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        inputs = batchdata[Keys.IMAGE].to(engine.state.device)
        labels = points = point_labels = None
        if self.user_prompt:
            raw_points = batchdata.get("points")
            if raw_points is not None:
                raw_labels = batchdata.get("point_labels")
                if raw_labels is None:
                    raise VilaM3Error("Point labels must be given with points (1 foreground, 0 background).")
                if batchdata.get("label_prompt") is not None and len(batchdata["label_prompt"]) != 1:
                    raise VilaM3Error("With point prompts, give at most one label prompt (points describe one object).")
                points_np = np.asarray(torch.as_tensor(raw_points).reshape(1, -1, 3).cpu())
                to_image = np.linalg.inv(np.asarray(inputs.affine[0])) @ np.asarray(inputs.meta["original_affine"][0])
                points = torch.as_tensor(self._transform_points(points_np, to_image), device=inputs.device)
                point_labels = torch.as_tensor(raw_labels, device=inputs.device).reshape(1, -1)
                prompt = (
                    None if batchdata.get("label_prompt") is None else _prompt_tensor(batchdata["label_prompt"], None)
                )
            else:
                prompt = _prompt_tensor(batchdata.get("label_prompt"), self.everything_labels)
            label_prompt = None if prompt is None else torch.tensor(prompt, device=inputs.device).unsqueeze(-1)
        else:
            labels = batchdata[Keys.LABEL].to(engine.state.device)
            label_prompt = torch.tensor(list(self.val_label_set or []), device=inputs.device).unsqueeze(-1)
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: labels}
        with engine.mode(engine.network):
            with torch.autocast(inputs.device.type, enabled=bool(engine.amp)):
                engine.state.output[Keys.PRED] = engine.inferer(
                    inputs=inputs,
                    network=engine.network,
                    point_coords=points,
                    point_labels=point_labels,
                    class_vector=label_prompt,
                )
        # Invertd runs a deep copy of the preprocessing: reset the op ids so the copy matches the recorded ops
        engine.state.output[Keys.IMAGE] = reset_ops_id(inputs)
        # one entry per batch item for decollation: VistaPostTransformd maps channel i to label_prompt[i]
        engine.state.output["label_prompt"] = None if label_prompt is None else label_prompt.unsqueeze(0)
        engine.state.output["points"] = None if points is None else points.unsqueeze(0)
        engine.state.output["point_labels"] = None if point_labels is None else point_labels.unsqueeze(0)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def label_channels(label: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """One binary channel per class: ``[1, H, W, D]`` label map -> ``[len(classes), H, W, D]`` float mask."""
    return torch.cat([(label == c).float() for c in classes], dim=0)


class Vista3dTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` that samples VISTA3D class and point prompts from the label of each patch.

    Args:
        label_set: global class indices present in the (relabelled) training data; include 0 when fine-tuning on a
            single dataset, as the Zoo bundle recommends.
        max_prompt, max_point, drop_label_prob, drop_point_prob: see ``monai.apps.vista3d.sampler.sample_prompt_pairs``.
        **kwargs: passed to :class:`monai.engines.SupervisedTrainer` (``loss_function`` gets ``[P,1,H,W,D]``
            logits and binary targets).
    """

    def __init__(
        self,
        *args: Any,
        label_set: Sequence[int],
        max_prompt: int = 16,
        max_point: int = 5,
        drop_label_prob: float = 0.25,
        drop_point_prob: float = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.label_set = list(label_set)
        self.max_prompt = max_prompt
        self.max_point = max_point
        self.drop_label_prob = drop_label_prob
        self.drop_point_prob = drop_point_prob
        self.skipped_iterations = 0

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        inputs, labels = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        label_prompt, point, point_label, prompt_class = sample_prompt_pairs(
            labels,
            self.label_set,
            max_prompt=self.max_prompt,
            max_point=self.max_point,
            drop_label_prob=self.drop_label_prob,
            drop_point_prob=self.drop_point_prob,
        )
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: labels}
        if prompt_class is None:
            # the patch holds none of the label_set classes: count it instead of silently training on nothing
            self.skipped_iterations += 1
            self.logger.warning(f"no prompt could be sampled from this patch; skipped {self.skipped_iterations} so far")
            engine.state.output[Keys.LOSS] = torch.tensor(0.0, device=inputs.device)
            return engine.state.output
        target = (labels[0] == prompt_class.reshape(-1, 1, 1, 1).to(labels.dtype)).float().unsqueeze(1)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(inputs.device.type, enabled=bool(engine.amp)):
            logits = engine.network(
                input_images=inputs,
                point_coords=point,
                point_labels=point_label,
                class_vector=label_prompt,
                prompt_class=prompt_class,
            )
            loss = engine.loss_function(logits, target)
        engine.state.output[Keys.PRED] = logits
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        if engine.amp and engine.scaler is not None:
            engine.scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
