"""VISTA3D expert conversations from CT volumes and label maps (any NIfTI dataset).

Slice extraction (missing from the reference): every volume and its label map are reoriented to RAS, label values
are mapped to VISTA3D ids (presets for the MSD tasks; identity for data already in VISTA3D ids, e.g. converted
TotalSegmentator), and axial slices showing the group's labels are drawn with the seed. Each slice is written as
the grey CT picture (window 50/400 HU) and the overlay with the expert's stable palette, both via
``vila_m3_core.experts.rendering`` (the inference renderer), and becomes one conversation:

* tumour groups (hepatic/pancreatic/lung tumour, bone lesion): trigger, results, ``yes``/``no``, and for ``yes``
  a how-many question answered from the tumour's connected components in the slice;
* other groups, 50/50: a segmentation-only answer ("I segmented ... using <VISTA3D(group)>.", no result turn, as
  the inference "segmented" rule ends the exchange there) or the "what is in the image" conversation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from data_prepare.expert_common import first_turn, trigger, write_train_test
from data_prepare.phrases import load_phrases
from data_prepare.records import Tally, progress, rng_for
from data_prepare.totalsegmentator import merge_masks
from data_prepare.volumes import VolumeError, load_ras, nifti_stem
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.feedback import instruction, legend_text, vista3d_feedback
from vila_m3_core.experts.labels import group_label_ids, normalise_group_name, palette, vista3d_label_name
from vila_m3_core.experts.rendering import axial_slice, grey_picture, render_segmentation, window_ct
from vila_m3_core.imaging.loading import CT

#: dataset label value -> VISTA3D id, and the label group asked about
PRESETS: dict[str, dict[str, Any]] = {
    "msd_liver": {"labels": {1: 1, 2: 26}, "group": "hepatic tumor"},
    "msd_pancreas": {"labels": {1: 4, 2: 24}, "group": "pancreatic tumor"},
    "msd_lung": {"labels": {1: 23}, "group": "lung tumor"},
    "msd_spleen": {"labels": {1: 3}, "group": "organs"},
    "vista3d": {"labels": None, "group": "everything"},
    "totalsegmentator": {"labels": None, "group": "everything"},
}
#: tumour groups -> the VISTA3D id of the tumour
TUMOUR_IDS = {"hepatic tumor": 26, "pancreatic tumor": 24, "lung tumor": 23, "bone lesion": 128}


def find_cases(input: str) -> list[tuple[str, Path, Path]]:
    """``(case name, image, label)`` from an MSD-style folder (``dataset.json`` or ``imagesTr``/``labelsTr``), a
    TotalSegmentator-style folder (``<case>/ct.nii.gz`` + ``<case>/segmentations/``; the label is then that folder)
    or a datalist JSON (a list of ``{"image", "label"}`` or ``{"training": [...]}``), paths relative to its folder."""
    path = Path(input)
    cts = sorted(path.glob("*/ct.nii.gz")) if path.is_dir() else []
    total = [ct.parent for ct in cts if (ct.parent / "segmentations").is_dir()]
    datalist = path / "dataset.json" if path.is_dir() else path
    if datalist.is_file():
        try:
            data = json.loads(datalist.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise VilaM3Error(f"datalist {datalist} is not valid JSON ({err})") from err
        entries = data.get("training", []) if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise VilaM3Error(f"datalist {datalist} must hold a list of {{'image', 'label'}} entries")
        base = datalist.parent
        cases = [
            (nifti_stem(e["image"]), base / e["image"], base / e["label"])
            for e in entries
            if isinstance(e, dict) and "image" in e and "label" in e
        ]
    elif total:
        cases = [(case.name, case / "ct.nii.gz", case / "segmentations") for case in total]
    elif (path / "imagesTr").is_dir() and (path / "labelsTr").is_dir():
        cases = [
            (nifti_stem(p), p, path / "labelsTr" / p.name)
            for p in sorted((path / "imagesTr").glob("*.nii*"))
            if not p.name.startswith(".")
        ]
    else:
        raise VilaM3Error(
            f"{input}: expected dataset.json, imagesTr/ + labelsTr/, <case>/ct.nii.gz + <case>/segmentations/, "
            "or a datalist JSON"
        )
    if not cases:
        raise VilaM3Error(f"{input}: no image/label pairs found")
    return cases


def map_labels(label: np.ndarray, mapping: dict[int, int] | None, allowed: list[int]) -> np.ndarray:
    """Dataset labels -> VISTA3D ids, keeping only the ids of the asked group (the expert returns only those)."""
    label = np.rint(label).astype(np.int32)
    if mapping is not None:
        mapped = np.zeros_like(label)
        for source, target in mapping.items():
            mapped[label == int(source)] = int(target)
        label = mapped
    return np.where(np.isin(label, allowed), label, 0).astype(np.int32)


def count_components(mask: np.ndarray) -> int:
    """Number of 8-connected components of a 2D mask."""
    from scipy import ndimage

    return int(ndimage.label(mask, structure=np.ones((3, 3), dtype=int))[1])


def choose_slices(label_ras: np.ndarray, group: str, k: int, seed: int, case: str) -> list[int]:
    """Up to ``k`` axial slices showing the group, drawn with the seed; for tumour groups half with the tumour."""
    present = label_ras.reshape(-1, label_ras.shape[2]).any(axis=0)
    candidates = [int(i) for i in np.flatnonzero(present)]
    rng = rng_for(seed, "vista3d-slices", case)
    if group not in TUMOUR_IDS:
        return sorted(rng.sample(candidates, min(k, len(candidates))))
    with_tumour = set(np.flatnonzero((label_ras == TUMOUR_IDS[group]).any(axis=(0, 1))).tolist())
    positives = [i for i in candidates if i in with_tumour]
    negatives = [i for i in candidates if i not in with_tumour]
    n_pos = min(len(positives), math.ceil(k / 2))
    chosen = rng.sample(positives, n_pos)
    chosen += rng.sample(negatives, min(len(negatives), k - n_pos))
    return sorted(chosen)


def _tumour_conversation(rng, bank, group, first, result, tumour_count) -> tuple[list[str], str]:
    question = rng.choice(bank["lesion_questions"][group])
    turns = [
        first(question),
        trigger("vista3d", group=group),
        result + instruction(question),
        "yes" if tumour_count else "no",
    ]
    if tumour_count:
        tumour = bank["tumor_names"][group]
        turns.append(rng.choice(bank["how_many_questions"]).format(tumor=tumour))
        template = bank["how_many_answer_one"] if tumour_count == 1 else bank["how_many_answer_many"]
        turns.append(template.format(tumor=tumour, n=tumour_count))
    return turns, "tumor"


def convert_expert_vista3d(
    input: str,
    output: str,
    preset: str = "vista3d",
    group: str | None = None,
    image_dir: str | None = None,
    slices_per_volume: int = 4,
    seed: int = 0,
    test_frac: float = 0.0,
    test_output: str | None = None,
) -> dict[str, Any]:
    """Extract CT slices and write VISTA3D expert conversations.

    Args:
        input: MSD task folder, datalist JSON, or a folder with ``dataset.json``.
        output: record file; image paths are relative to ``image_dir``.
        preset: label mapping and default group: ``msd_liver``, ``msd_pancreas``, ``msd_lung``, ``msd_spleen``,
            ``vista3d`` (labels already VISTA3D ids) or ``totalsegmentator`` (per-structure masks merged by name).
        group: the label group asked about (default from the preset), e.g. ``organs``, ``hepatic tumor``.
        image_dir: where slice pictures go (default ``vista3d_images`` next to ``output``).
        slices_per_volume: slices drawn per volume.
        seed: seeds slice, question and conversation-type draws and the train/test split.
        test_frac: share of records written to the test file (default 0).
        test_output: test file path (default ``<output stem>_test<suffix>``).
    """
    if preset not in PRESETS:
        raise VilaM3Error(f"--preset must be one of {list(PRESETS)}, not {preset!r}")
    group = normalise_group_name(group or PRESETS[preset]["group"])
    allowed = group_label_ids(group)
    if group in TUMOUR_IDS and TUMOUR_IDS[group] not in allowed:
        allowed.append(TUMOUR_IDS[group])
    mapping = PRESETS[preset]["labels"]
    bank = load_phrases("vista3d")
    images_root = Path(image_dir) if image_dir else Path(output).parent / "vista3d_images"
    images_root.mkdir(parents=True, exist_ok=True)
    cards_first = lambda question: first_turn(CT, question, " <image>")  # noqa: E731
    tally = Tally(f"expert_vista3d/{group}")
    records: list[dict[str, Any]] = []
    for case, image_path, label_path in progress(find_cases(input), "vista3d volumes"):
        tally.read += 1
        try:
            image_ras = load_ras(image_path)
            if label_path.is_dir():
                label_ras = merge_masks(label_path, image_ras.shape, tally, case)
            else:
                label_ras = load_ras(label_path)
        except VolumeError as err:
            tally.drop(str(err), f"{case}: {image_path} / {label_path}")
            continue
        if image_ras.shape != label_ras.shape:
            tally.drop("image and label sizes differ", f"{case}: {image_ras.shape} vs {label_ras.shape}")
            continue
        label_ras = map_labels(label_ras, mapping, allowed)
        slices = choose_slices(label_ras, group, slices_per_volume, seed, case)
        if not slices:
            tally.drop(f"no slice shows the {group} labels", case)
            continue
        windowed = window_ct(image_ras)
        for index in slices:
            view = render_segmentation(image_ras, CT, label_ras, index, palette("vista3d"), vista3d_label_name)
            names = [f"{case}/slice{index:04d}_img.png", f"{case}/slice{index:04d}_label.png"]
            (images_root / case).mkdir(parents=True, exist_ok=True)
            grey_picture(axial_slice(windowed, index)).save(images_root / names[0])
            view.image.save(images_root / names[1])
            result = vista3d_feedback(view.legend)
            rng = rng_for(seed, "vista3d", case, index)
            if group in TUMOUR_IDS:
                count = count_components(axial_slice(label_ras, index) == TUMOUR_IDS[group])
                turns, kind = _tumour_conversation(rng, bank, group, cards_first, result, count)
            elif rng.random() < 0.5:
                question, answer = rng.choice(bank["segmentation_qa"][group])
                turns, kind, names = [cards_first(question), answer], "segmentation", names[:1]
            else:
                question = rng.choice(bank["what_questions"])
                answer = bank["what_answer"].format(legend=legend_text(view.legend))
                turns = [cards_first(question), trigger("vista3d", group=group), result + instruction(question), answer]
                kind = "what"
            records.append(
                {
                    "id": f"vista3d-{case}-{index}",
                    "images": names,
                    "conversations": [
                        {"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)
                    ],
                    "expert": "VISTA3D",
                    "group": group,
                    "conversation_type": kind,
                    "slice_index": index,
                    "source": "vista3d",
                    "source_id": case,
                }
            )
    return write_train_test(records, output, tally, seed, test_frac, test_output, images_root)
