"""Expert conversations: CXR (records + ensemble predictions), VISTA3D (CT + labels, tiny NIfTI made here) and
BraTS (four sequences + segmentation), with the wordings imported from vila_m3_core."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from dp_raw_fixtures import cxr_scores, write_predictions
from PIL import Image

from data_prepare.cli import main
from data_prepare.expert_brats import convert_expert_brats
from data_prepare.expert_cxr import convert_expert_cxr
from data_prepare.expert_vista3d import convert_expert_vista3d
from data_prepare.validate import validate_records
from vila_m3_core.agent_inputs import MRI_SEQUENCES_TEXT
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts.cards import render_model_cards

CARDS = render_model_cards()
AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------- CXR
def _vqa_records(path):
    records = [
        {
            "id": "q1",
            "image": "files/a/pa001.jpg",
            "split": "train",
            "conversations": [
                {"from": "human", "value": "is there effusion?\n<image>"},
                {"from": "gpt", "value": "yes"},
                {"from": "human", "value": "where?"},
                {"from": "gpt", "value": "left"},
            ],
        },
        {
            "id": "q2",
            "image": "files/b/ap002.jpg",
            "conversations": [{"from": "human", "value": "<image>\nwhat view?"}, {"from": "gpt", "value": "AP"}],
        },
        {
            "id": "q3",
            "image": "files/c/none.jpg",
            "conversations": [{"from": "human", "value": "q\n<image>"}, {"from": "gpt", "value": "a"}],
        },
        {"id": "q4", "images": ["x", "y"], "conversations": []},
    ]
    path.write_text(json.dumps(records))
    return path


def test_expert_cxr_four_turn_conversation_with_the_training_wording(tmp_path):
    source = _vqa_records(tmp_path / "vqa.json")
    # the predict verb's layout: one JSON, keys relative to its image folder
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps({"a/pa001.jpg": cxr_scores(("Effusion",)), "b/ap002.jpg": cxr_scores()}))
    result = convert_expert_cxr(str(source), str(tmp_path / "cxr.json"), str(predictions))
    records = {r["id"]: r for r in load(tmp_path / "cxr.json")}
    assert set(records) == {"q1", "q2"}
    assert result["train"]["dropped"] == {"not a single-image record with a conversation": 1, "prediction missing": 1}
    turns = [t["value"] for t in records["q1"]["conversations"]]
    lines = "".join(
        f"{c}: {'yes' if c == 'effusion' else 'no'}\n"
        for c in (
            "atelectasis",
            "consolidation",
            "infiltration",
            "pneumothorax",
            "edema",
            "emphysema",
            "fibrosis",
            "effusion",
            "pneumonia",
            "pleural thickening",
            "cardiomegaly",
            "nodule",
            "mass",
            "hernia",
            "lung lesion",
            "fracture",
            "lung opacity",
            "enlarged cardiomediastinum",
        )
    )
    assert turns == [
        CARDS + "<image> This is a CXR image.\nis there effusion?",
        "This looks like an chest x-ray. Let me first trigger <CXR()>.",
        "The resulting predictions are:\n" + lines + ". Analyze the image and take these predictions into account "
        "when responding to this prompt:\nis there effusion?",
        "yes",
        "where?",
        "left",
    ]
    assert records["q1"]["split"] == "train" and records["q1"]["expert"] == "CXR"
    assert records["q2"]["conversations"][0]["value"].endswith("<image> This is a CXR image.\nwhat view?")
    assert validate_records(str(tmp_path / "cxr.json"))["invalid"] == 0


def test_expert_cxr_test_frac_is_seeded_and_accounted(tmp_path):
    records = [
        {
            "id": f"r{i}",
            "image": f"img{i}.jpg",
            "conversations": [{"from": "human", "value": "q\n<image>"}, {"from": "gpt", "value": "a"}],
        }
        for i in range(40)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    preds = write_predictions(tmp_path / "p", {f"img{i}.jpg": () for i in range(40)})
    result = convert_expert_cxr(
        str(tmp_path / "in.jsonl"), str(tmp_path / "o.jsonl"), str(preds), seed=1, test_frac=0.25
    )
    train, test = result["train"], result["test"]
    assert train["written"] + test["written"] == 40 and 2 < test["written"] < 20
    assert train["dropped"] == {"sent to the test file (test_frac)": test["written"]}
    assert (tmp_path / "o_test.jsonl").is_file()
    default = convert_expert_cxr(str(tmp_path / "in.jsonl"), str(tmp_path / "d.jsonl"), str(preds))
    assert default["test"] is None and default["train"]["written"] == 40


# ------------------------------------------------------------------------------------------------------ VISTA3D
def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))


def write_msd_liver(root, cases=2):
    """MSD Task03 layout: imagesTr/liver_N.nii.gz (HU) + labelsTr (1 liver, 2 tumour) + dataset.json."""
    rng = np.random.default_rng(0)
    training = []
    for n in range(cases):
        ct = rng.normal(40, 30, (16, 14, 8)).astype(np.float32)
        label = np.zeros((16, 14, 8), dtype=np.uint8)
        label[3:12, 3:10, 1:7] = 1
        label[4:6, 4:6, 2:4] = 2  # tumour in slices 2-3
        label[9:11, 7:9, 3] = 2  # a second tumour in slice 3
        _save(root / "imagesTr" / f"liver_{n}.nii.gz", ct)
        _save(root / "labelsTr" / f"liver_{n}.nii.gz", label)
        training.append({"image": f"./imagesTr/liver_{n}.nii.gz", "label": f"./labelsTr/liver_{n}.nii.gz"})
    training.append({"image": "./imagesTr/liver_9.nii.gz", "label": "./labelsTr/liver_9.nii.gz"})  # absent
    (root / "dataset.json").write_text(json.dumps({"name": "Liver", "training": training}))
    return root


def test_vista3d_tumour_conversations_from_msd_liver(tmp_path):
    source = write_msd_liver(tmp_path / "Task03_Liver")
    out = tmp_path / "out"
    result = convert_expert_vista3d(str(source), str(out / "v.json"), preset="msd_liver", slices_per_volume=6)
    summary = result["train"]
    assert summary["read"] == 3 and summary["dropped"] == {"volume file missing": 1}
    records = load(out / "v.json")
    assert len(records) == 12 and {r["group"] for r in records} == {"hepatic tumor"}
    by_slice = {r["slice_index"]: r for r in records if r["source_id"] == "liver_0"}
    assert sorted(by_slice) == [1, 2, 3, 4, 5, 6]
    with_two = [t["value"] for t in by_slice[3]["conversations"]]
    assert with_two[0].startswith(CARDS + " <image>This is a CT image.\n")
    question = with_two[0][len(CARDS + " <image>This is a CT image.\n") :]
    assert with_two[1] == "This looks like a CT image. Let me trigger <VISTA3D(hepatic tumor)>. "
    assert with_two[2].startswith("The results are <image>. The colors in this image describe red: liver, ")
    assert with_two[2].endswith("hepatic tumor. Use this result to respond to this prompt:\n" + question)
    assert with_two[3] == "yes" and with_two[5] == "There are 2 hepatic tumors."
    one = [t["value"] for t in by_slice[2]["conversations"]]
    assert one[3] == "yes" and one[5] == "There is 1 hepatic tumor."
    none = [t["value"] for t in by_slice[5]["conversations"]]
    assert none[3] == "no" and len(none) == 4 and "hepatic tumor" not in none[2].split("describe")[1]
    for record in records:
        assert len(record["images"]) == 2
        with Image.open(out / "vista3d_images" / record["images"][1]) as overlay:
            assert overlay.mode == "RGB" and overlay.size == (16, 14)  # (X, Y) -> rows Y, cols X
    assert validate_records(str(out / "v.json"), str(out / "vista3d_images"))["invalid"] == 0


def test_vista3d_other_groups_mix_segmentation_and_what_and_is_deterministic(tmp_path):
    # labels already in VISTA3D ids (e.g. converted TotalSegmentator), listed in a datalist JSON
    label = np.zeros((16, 14, 10), dtype=np.uint8)
    label[2:8, 2:8, 1:9] = 3  # spleen (organs group)
    label[10:14, 3:6, 1:9] = 6  # aorta (cardiovascular group, not organs)
    _save(tmp_path / "data" / "ct.nii.gz", np.full(label.shape, 30, np.float32))
    _save(tmp_path / "data" / "seg.nii.gz", label)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps([{"image": "data/ct.nii.gz", "label": "data/seg.nii.gz"}]))
    runs = []
    for name in ("a", "b"):
        convert_expert_vista3d(
            str(datalist), str(tmp_path / name / "v.json"), group="organs", slices_per_volume=8, seed=5
        )
        runs.append(tmp_path / name)
    assert (runs[0] / "v.json").read_bytes() == (runs[1] / "v.json").read_bytes()
    records = load(runs[0] / "v.json")
    assert len(records) == 8
    assert {r["conversation_type"] for r in records} == {"segmentation", "what"}
    for record in records:
        turns = [t["value"] for t in record["conversations"]]
        if record["conversation_type"] == "segmentation":
            assert len(turns) == 2 and len(record["images"]) == 1
            assert "segmented" in turns[1] and "<VISTA3D(organs)>" in turns[1]
        else:
            assert turns[1] == "This looks like a CT image. Let me trigger <VISTA3D(organs)>. "
            assert turns[2].startswith("The results are <image>. The colors in this image describe cyan: spleen. ")
            assert (
                turns[3] == "This is a CT image. It contains several anatomical structures such as identified "
                "by VISTA3D: cyan: spleen."
            )
        assert "aorta" not in json.dumps(record)  # only the asked group's labels are shown
    first = sorted((runs[0] / "vista3d_images" / "ct").iterdir())[0]
    assert first.read_bytes() == (runs[1] / "vista3d_images" / "ct" / first.name).read_bytes()


def test_vista3d_bad_input(tmp_path):
    with pytest.raises(VilaM3Error, match="expected dataset.json"):
        convert_expert_vista3d(str(tmp_path), str(tmp_path / "o.json"))
    with pytest.raises(VilaM3Error, match="preset"):
        convert_expert_vista3d(str(tmp_path), str(tmp_path / "o.json"), preset="nope")
    root = tmp_path / "T"
    _save(root / "imagesTr" / "a.nii.gz", np.zeros((4, 4, 3), np.float32))
    _save(root / "labelsTr" / "a.nii.gz", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(VilaM3Error, match="no valid record"):
        convert_expert_vista3d(str(root), str(tmp_path / "o.json"), preset="msd_liver")


# -------------------------------------------------------------------------------------------------------- BraTS
def sequence_volume(shape, k):
    """A different picture per sequence (k = position in t1, t1ce, t2, flair), unchanged by min-max scaling."""
    x = np.arange(shape[0])[:, None, None]
    y = np.arange(shape[1])[None, :, None]
    return np.broadcast_to(x * (k + 1) + y * (4 - k) ** 2, shape).astype(np.float32)


def write_brats(root):
    """BraTS 2018 layout: <grade>/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz; each sequence has its own values."""
    shape = (12, 10, 6)
    for grade, case in (("HGG", "Brats18_A_1"), ("LGG", "Brats18_B_1"), ("HGG", "Brats18_C_1")):
        folder = root / grade / case
        for k, name in enumerate(("t1", "t1ce", "t2", "flair")):
            volume = sequence_volume(shape, k)
            if not (case == "Brats18_C_1" and name == "flair"):
                _save(folder / f"{case}_{name}.nii.gz", volume)
        seg = np.zeros(shape, np.uint8)
        seg[2:9, 2:8, 1:5] = 2
        seg[3:7, 3:6, 2:4] = 1
        seg[4:6, 4:5, 2:4] = 4
        _save(folder / f"{case}_seg.nii.gz", seg)
    return root


def test_brats_three_conversations_per_slice_with_one_picture_per_sequence(tmp_path):
    source = write_brats(tmp_path / "brats")
    out = tmp_path / "out"
    result = convert_expert_brats(str(source), str(out / "b.json"), slices_per_volume=5)
    assert result["train"]["dropped"] == {"missing MRI sequence file": 1}
    records = {r["id"]: r for r in load(out / "b.json")}
    assert len(records) == 2 * 2 * 3  # 2 cases, slices 2 and 3 hold 1, 2 and 4, 3 conversations each
    grade = records["brats-Brats18_B_1-2-grade"]
    turns = [t["value"] for t in grade["conversations"]]
    question = turns[0][len(CARDS + MRI_SEQUENCES_TEXT) :]
    assert turns[0] == CARDS + MRI_SEQUENCES_TEXT + question
    assert turns[1] == "This looks like an MRI image sequence. Let me first trigger <BRATS()>."
    assert turns[2] == (
        "The results are <image>. The colors in this image describe\nred and yellow: tumor core, "
        "only yellow: enhancing tumor, all colors: whole tumor\nUse this result to respond to this "
        "prompt:\n" + question
    )
    assert turns[3] == "The scan indicates lower grade glioma."
    assert grade["images"][:4] == [f"Brats18_B_1/slice0002_{s}.png" for s in ("t1ce", "t1", "t2", "flair")]
    assert len(grade["images"]) == 5
    assert records["brats-Brats18_A_1-3-grade"]["conversations"][3]["value"] == "The scan indicates high grade glioma."
    segment = records["brats-Brats18_A_1-3-segmentation"]
    assert [t["value"] for t in segment["conversations"]][1] == "I segmented any brain tumors using <BRATS()>."
    assert len(segment["images"]) == 4
    what = records["brats-Brats18_A_1-3-what"]
    assert what["conversations"][1]["value"] == "This is a brain MRI scan." and len(what["images"]) == 4
    # the four sequence pictures differ (the reference wrote T1ce into all four)
    from vila_m3_core.experts.rendering import axial_slice, grey_picture, scale_min_max

    pictures = [np.asarray(Image.open(out / "brats_images" / p)) for p in grade["images"][:4]]
    assert len({p.tobytes() for p in pictures}) == 4
    for position, name in enumerate(("t1ce", "t1", "t2", "flair")):
        k = ("t1", "t1ce", "t2", "flair").index(name)
        expected = grey_picture(axial_slice(scale_min_max(sequence_volume((12, 10, 6), k)), 2))
        assert np.array_equal(pictures[position], np.asarray(expected)), name
    assert validate_records(str(out / "b.json"), str(out / "brats_images"))["invalid"] == 0


def test_cli_expert_verbs(tmp_path, capsys):
    source = write_brats(tmp_path / "brats")
    code = 0
    try:
        main(
            [
                "expert_brats",
                "--input",
                str(source),
                "--output",
                str(tmp_path / "b.jsonl"),
                "--test_frac",
                "0.5",
                "--seed",
                "3",
            ]
        )
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert lines[0]["dataset"] == "expert_brats" and lines[1]["dataset"] == "expert_brats/test"
    assert lines[0]["written"] + lines[1]["written"] == 12


def test_vista3d_totalsegmentator_masks_are_merged_by_name(tmp_path):
    from data_prepare.totalsegmentator import vista3d_id_for_mask

    assert [
        vista3d_id_for_mask(n)
        for n in (
            "kidney_left",
            "lung_upper_lobe_right",
            "vertebrae_L5",
            "urinary_bladder",
            "iliac_vena_left",
            "not_a_structure",
        )
    ] == [14, 30, 33, 15, 60, None]
    case = tmp_path / "Totalseg" / "s0001"
    shape = (12, 10, 6)
    _save(case / "ct.nii.gz", np.full(shape, 40, np.float32))
    liver = np.zeros(shape, np.uint8)
    liver[2:7, 2:7, 1:5] = 1
    kidney = np.zeros(shape, np.uint8)
    kidney[8:11, 3:6, 1:5] = 1
    _save(case / "segmentations" / "liver.nii.gz", liver)
    _save(case / "segmentations" / "kidney_left.nii.gz", kidney)
    _save(case / "segmentations" / "some_implant.nii.gz", kidney)
    result = convert_expert_vista3d(
        str(tmp_path / "Totalseg"),
        str(tmp_path / "t.json"),
        preset="totalsegmentator",
        group="organs",
        slices_per_volume=4,
        seed=2,
    )
    assert result["train"]["dropped"] == {"TotalSegmentator mask without a VISTA3D id (mask)": 1}
    records = load(tmp_path / "t.json")
    assert len(records) == 4 and {r["source_id"] for r in records} == {"s0001"}
    what = [r for r in records if r["conversation_type"] == "what"]
    assert what  # seed 2 draws both conversation types here
    for record in what:
        assert record["conversations"][3]["value"].endswith("VISTA3D: red: liver, pink: left kidney.")
