"""BraTS expert conversations from the four MRI sequences and a segmentation (BraTS 2018 layout).

Cases are found as ``<case>_seg.nii.gz`` next to ``<case>_t1ce``, ``_t1``, ``_t2`` and ``_flair`` volumes; the grade
(LGG/HGG) comes from the path, as the reference. Slices holding labels 1, 2 and 4 together are drawn with the
seed; each sequence is written as its own picture (the reference wrote T1ce into all four: fixed), in the order
t1ce, t1, t2, flair that the MRI sequence text and the BraTS bundle use, plus the overlay on T1ce drawn by the
inference renderer. Three conversations per slice: "what" (no expert), glioma grade (trigger, results, answer)
and segmentation only (trigger ending the exchange, as the inference "segmented" rule does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_prepare.expert_common import trigger, write_train_test
from data_prepare.phrases import load_phrases
from data_prepare.records import Tally, progress, rng_for
from data_prepare.volumes import VolumeError, load_ras
from vila_m3_core.agent_inputs import MRI_SEQUENCES_TEXT
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.cards import render_model_cards
from vila_m3_core.experts.feedback import brats_feedback, instruction
from vila_m3_core.experts.labels import BRATS_LABEL_NAMES, palette
from vila_m3_core.experts.rendering import axial_slice, grey_picture, render_segmentation, scale_min_max
from vila_m3_core.imaging.loading import MRI, MRI_SEQUENCE_ORDER

TUMOUR_LABELS = (1, 2, 4)


def find_brats_cases(input: str, seg_suffix: str = "_seg") -> list[tuple[str, dict[str, Path], Path, str | None]]:
    """``(case, {sequence: path}, segmentation, grade or None)`` for every ``*<seg_suffix>.nii(.gz)`` under
    ``input``; sequences missing on disk are left out of the dict (the caller drops the case)."""
    root = Path(input)
    if not root.is_dir():
        raise VilaM3Error(f"BraTS folder {root} does not exist")
    cases = []
    for seg in sorted(p for p in root.rglob(f"*{seg_suffix}.nii*")):
        suffix = ".nii.gz" if seg.name.endswith(".nii.gz") else ".nii"
        prefix = seg.name[: -len(seg_suffix + suffix)]
        sequences = {name: seg.parent / f"{prefix}_{name}{suffix}" for name in MRI_SEQUENCE_ORDER}
        sequences = {name: path for name, path in sequences.items() if path.is_file()}
        grade = next((part for part in seg.relative_to(root).parts if part.upper() in ("HGG", "LGG")), None)
        cases.append((prefix, sequences, seg, grade.upper() if grade else None))
    if not cases:
        raise VilaM3Error(f"no *{seg_suffix}.nii.gz segmentation found under {root}")
    return cases


def full_tumour_slices(seg_ras: np.ndarray) -> list[int]:
    """Axial slices holding labels 1, 2 and 4 together (the reference's selection)."""
    keep = np.ones(seg_ras.shape[2], dtype=bool)
    for label in TUMOUR_LABELS:
        keep &= (seg_ras == label).any(axis=(0, 1))
    return [int(i) for i in np.flatnonzero(keep)]


def convert_expert_brats(
    input: str,
    output: str,
    image_dir: str | None = None,
    slices_per_volume: int = 3,
    seg_suffix: str = "_seg",
    seed: int = 0,
    test_frac: float = 0.0,
    test_output: str | None = None,
) -> dict[str, Any]:
    """Extract MRI slices and write the three BraTS expert conversation types.

    Args:
        input: BraTS folder (searched recursively; ``HGG``/``LGG`` folders give the grade).
        output: record file; image paths are relative to ``image_dir``.
        image_dir: where slice pictures go (default ``brats_images`` next to ``output``).
        slices_per_volume: slices drawn per case among those holding labels 1, 2 and 4.
        seg_suffix: suffix of the segmentation files (``_seg`` for the ground truth).
        seed: seeds slice and question draws and the train/test split.
        test_frac: share of records written to the test file (default 0).
        test_output: test file path (default ``<output stem>_test<suffix>``).
    """
    bank = load_phrases("brats")
    images_root = Path(image_dir) if image_dir else Path(output).parent / "brats_images"
    images_root.mkdir(parents=True, exist_ok=True)
    cards = render_model_cards()
    tally = Tally("expert_brats")
    records: list[dict[str, Any]] = []
    for case, sequences, seg_path, grade in progress(find_brats_cases(input, seg_suffix), "brats cases"):
        tally.read += 1
        missing = [name for name in MRI_SEQUENCE_ORDER if name not in sequences]
        if missing:
            tally.drop("missing MRI sequence file", f"{case}: {missing}")
            continue
        try:
            volumes = {name: load_ras(path) for name, path in sequences.items()}
            seg_ras = np.rint(load_ras(seg_path)).astype(np.int32)
        except VolumeError as err:
            tally.drop(str(err), case)
            continue
        if any(v.shape != seg_ras.shape for v in volumes.values()):
            tally.drop("sequence and segmentation sizes differ", case)
            continue
        rng = rng_for(seed, "brats-slices", case)
        candidates = full_tumour_slices(seg_ras)
        if not candidates:
            tally.drop("no slice holds labels 1, 2 and 4 together", case)
            continue
        scaled = {name: scale_min_max(v) for name, v in volumes.items()}
        (images_root / case).mkdir(parents=True, exist_ok=True)
        for index in sorted(rng.sample(candidates, min(slices_per_volume, len(candidates)))):
            names = [f"{case}/slice{index:04d}_{name}.png" for name in MRI_SEQUENCE_ORDER]
            for name, relative in zip(MRI_SEQUENCE_ORDER, names):
                grey_picture(axial_slice(scaled[name], index)).save(images_root / relative)
            view = render_segmentation(
                volumes["t1ce"], MRI, seg_ras, index, palette("brats"), BRATS_LABEL_NAMES.__getitem__
            )
            overlay = f"{case}/slice{index:04d}_label.png"
            view.image.save(images_root / overlay)
            colours = dict(zip(view.labels_in_slice, (colour for colour, _ in view.legend)))
            result = brats_feedback(view.labels_in_slice, colours)
            draw = rng_for(seed, "brats", case, index)
            first = lambda question: cards + MRI_SEQUENCES_TEXT + question  # noqa: E731
            q = draw.choice(bank["what_questions"])
            conversations = {"what": (names, [first(q), bank["what_answer"]])}
            if grade is None:
                tally.drop("grade unknown (no HGG/LGG folder): grade conversation skipped", f"{case}/{index}")
            else:
                q = draw.choice(bank["grade_questions"])
                conversations["grade"] = (
                    names + [overlay],
                    [first(q), trigger("brats"), result + instruction(q), bank["grade_answers"][grade]],
                )
            q = draw.choice(bank["segment_questions"])
            conversations["segmentation"] = (names, [first(q), trigger("brats_segment")])
            for kind, (images, turns) in conversations.items():
                records.append(
                    {
                        "id": f"brats-{case}-{index}-{kind}",
                        "images": images,
                        "conversations": [
                            {"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)
                        ],
                        "expert": "BRATS",
                        "conversation_type": kind,
                        "slice_index": index,
                        "source": "brats",
                        "source_id": case,
                        **({"grade": grade} if grade else {}),
                    }
                )
    return write_train_test(records, output, tally, seed, test_frac, test_output, images_root)
