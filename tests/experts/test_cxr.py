"""CXR ensemble through torchxrayvision's own loading code, on random-weight files in a temporary cache dir."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.experts import feedback
from vila_m3_core.experts.base import ExpertRequest, create_expert
from vila_m3_core.experts.cxr import CXR_MODELS, CXRExpert, ensemble_scores, models_for_class


@pytest.fixture(scope="module")
def cxr_png(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("cxr") / "chest.png"
    Image.fromarray(rng.integers(0, 256, (96, 80), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def expert(xrv_cache_dir):
    import vila_m3_core.experts.cxr  # noqa: F401 - registers "CXR"

    return create_expert("cxr", cache_dir=str(xrv_cache_dir), device="cpu")


@pytest.fixture(scope="module")
def result(expert, cxr_png):
    # one real run (8 networks on CPU take ~15 s), shared by the tests below
    return expert.run(ExpertRequest(image=str(cxr_png), prompt="Is there effusion?", trigger="<CXR()>"))


def test_end_to_end_real_loading_path(expert, result, xrv_cache_dir):
    models = expert.load()
    assert list(models) == list(CXR_MODELS)
    assert type(models["resnet50-res512-all"]).__name__ == "ResNet"
    assert all(m.weights_filename_local.startswith(str(xrv_cache_dir)) for m in models.values())
    scores = result.data["scores"]
    assert list(scores) == list(feedback.CXR_CLASSES)
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    # Pneumothorax comes from the ResNet alone; classes the RSNA DenseNet was not trained on include its 0.5
    assert result.text == feedback.cxr_feedback(feedback.cxr_findings(scores))
    assert result.text.startswith("The resulting predictions are:\natelectasis: ")
    assert result.instruction == "Use this result to respond to this prompt:\nIs there effusion?"
    assert result.images == [] and set(result.seconds) == {"load", "inference"}


def test_models_load_once(expert, result, monkeypatch):
    import torchxrayvision as xrv

    def refuse(*args, **kwargs):
        raise AssertionError("a network was rebuilt")

    first = expert.load()
    monkeypatch.setattr(xrv.models, "DenseNet", refuse)
    monkeypatch.setattr(xrv.models, "ResNet", refuse)
    assert expert.load() is first


def test_ensemble_subsets_and_untrained_outputs():
    per_model = {name: np.full(18, float(k) / 10) for k, name in enumerate(CXR_MODELS)}
    scores = ensemble_scores(per_model)
    index = {name: k for k, name in enumerate(CXR_MODELS)}
    assert scores["Pneumothorax"] == pytest.approx(0.7)  # resnet50 only
    assert scores["Lung Opacity"] == pytest.approx(np.mean(range(8)) / 10)
    group_2 = [index[m] for m in models_for_class("Edema")]
    assert scores["Edema"] == pytest.approx(np.mean(group_2) / 10)
    assert set(models_for_class("Fracture")) == {
        "densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-chex", "resnet50-res512-all"
    }  # fmt: skip
    # skip_untrained drops the NIH DenseNet (no Fracture output) from the Fracture mean
    trained = ensemble_scores(per_model, skip_untrained=True)
    expected = np.mean([index[m] for m in models_for_class("Fracture") if m != "densenet121-res224-nih"]) / 10
    assert trained["Fracture"] == pytest.approx(expected)


def test_preprocessing_is_torchxrayvision(cxr_png):
    import torchxrayvision as xrv

    picture = np.asarray(Image.open(cxr_png), dtype=np.float32)
    out = CXRExpert.preprocess(picture)
    assert out.shape == (1, 80, 80)
    expected = xrv.datasets.XRayCenterCrop()(xrv.datasets.normalize(picture, 255)[None])
    assert np.allclose(out, expected)
    assert out.min() >= -1024 and out.max() <= 1024


def test_missing_weights_say_where(tmp_path):
    expert = CXRExpert(cache_dir=str(tmp_path), device="cpu")
    with pytest.raises(VilaM3Error) as info:
        expert.load()
    message = str(info.value)
    assert "pc-nih-rsna-siim-vin-resnet50-test512-e400-state.pt" in message and str(tmp_path) in message
    assert "https://github.com/mlmed/torchxrayvision/releases" in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded


def test_3d_input_refused(expert, ct_nifti):
    with pytest.raises(VilaM3Error, match="2D chest X-ray"):
        expert.run(ExpertRequest(image=str(ct_nifti)))


def test_predict_cli_writes_scores(xrv_cache_dir, cxr_png, tmp_path, monkeypatch):
    from vila_m3_core.cli import CLI

    seen = []

    def fake_scores(self, picture):
        # the networks are exercised above; here the folder walk, failure accounting and JSON are under test
        seen.append(picture.shape)
        return {name: 0.25 for name in feedback.CXR_CLASSES}

    monkeypatch.setattr(CXRExpert, "predict_scores", fake_scores)
    monkeypatch.setattr(CXRExpert, "load", lambda self: {})  # loading is covered by the end-to-end test
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(cxr_png.read_bytes())
    (folder / "b.jpg").write_bytes(b"broken")
    out = tmp_path / "scores.json"
    summary = CLI().predict(str(folder), str(out), cache_dir=str(xrv_cache_dir), device="cpu")
    written = json.loads(out.read_text())
    assert list(written) == ["a.png"] and list(written["a.png"]) == list(feedback.CXR_CLASSES)
    assert (
        summary["scored"] == 1 and list(summary["failed"]) == ["b.jpg"] and "Cannot read" in summary["failed"]["b.jpg"]
    )
    assert seen == [(96, 80)] and written["a.png"]["Edema"] == 0.25
