"""Report metrics: PTB tokenisation (Java vs the Python fallback), BLEU/ROUGE against pycocoevalcap called
directly on the real IU X-ray reports, hand-computed cases, empty predictions and the cleaning step."""

import contextlib
import io
import math
import os
import random

import pytest

from vila_m3_core.evaluation.metrics.cleaning import clean_report
from vila_m3_core.evaluation.metrics.ptb_tokenizer import java_available, ptb_tokenize, python_ptb_tokenize
from vila_m3_core.evaluation.metrics.report import report_scores
from vila_m3_core.evaluation.sample_text import load_iu_reports

needs_java = pytest.mark.skipif(not java_available(), reason="the reference PTB tokenizer needs a Java runtime")


@pytest.fixture(scope="module")
def iu_reports():
    reports = load_iu_reports()
    assert len(reports) > 3900  # 3,955 files, a few without findings/impression
    return reports


def perturb(text: str, rng: random.Random) -> str:
    """A plausible wrong report: drop, swap and replace words, sometimes truncate."""
    words = text.split()
    out = []
    for word in words:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.15:
            out.append(rng.choice(["left", "right", "mild", "no", "effusion", "stable", "Heart"]))
        out.append(word)
    if len(out) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if rng.random() < 0.2:
        out = out[: max(1, len(out) // 2)]
    return " ".join(out)


@needs_java
def test_python_tokenizer_agrees_with_corenlp_on_every_iu_report(iu_reports):
    texts = list(iu_reports.values())
    java = ptb_tokenize(texts, backend="java")
    python = [python_ptb_tokenize(t) for t in texts]
    disagreements = [(t, j, p) for t, j, p in zip(texts, java, python, strict=True) if j != p]
    assert not disagreements, disagreements[:3]


@needs_java
def test_tokenizers_agree_on_tricky_text():
    texts = [
        "No pneumothorax (left), x-ray 1.5 cm; don't T12-L1 \"quoted\" AP/PA 50% & it's 3:00 p.m. e.g. Dr. Smith's",
        "Heart... normal!? [see] {x} mid-lung; 1/2 --dash - x",
        "The patient's lungs. 'quoted' 10-mm 5-10 cm. 2., Mild CT. 1.There cannot",
        "",
    ]
    assert ptb_tokenize(texts, backend="java") == [python_ptb_tokenize(t) for t in texts]


def _pycocoevalcap_direct(refs: dict[str, str], hyps: dict[str, str]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": v}] for k, v in refs.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in hyps.items()})
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    return {**{f"BLEU_{i + 1}": b for i, b in enumerate(bleu)}, "ROUGE_L": rouge}


@needs_java
@pytest.mark.parametrize("backend", ["java", "python"])
def test_bleu_rouge_equal_pycocoevalcap_on_perturbed_iu_reports(iu_reports, backend):
    rng = random.Random(0)
    keys = sorted(iu_reports)[:600]
    refs = {k: iu_reports[k] for k in keys}
    hyps = {k: perturb(v, rng) for k, v in refs.items()}
    expected = _pycocoevalcap_direct(refs, hyps)
    ours = report_scores(refs, hyps, tokenizer=backend, meteor=False, cider=False)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name
    assert 0.2 < ours["BLEU_4"] < 0.95  # the perturbations are real, not identity


def test_hand_computed_bleu_and_rouge():
    refs = {"a": "the cat sat on the mat"}
    out = report_scores(refs, {"a": "the cat sat on"}, tokenizer="python", meteor=False)
    # all n-gram precisions are 1 (one 4-gram); brevity penalty exp(1 - 6/4)
    assert out["BLEU_1"] == pytest.approx(math.exp(-0.5), abs=1e-6)
    assert out["BLEU_4"] == pytest.approx(math.exp(-0.5), abs=1e-6)
    # LCS 4: P = 1, R = 4/6, F(beta=1.2) = (1 + 1.44) * P * R / (R + 1.44 * P)
    assert out["ROUGE_L"] == pytest.approx(2.44 * (2 / 3) / (2 / 3 + 1.44))
    perfect = report_scores(refs, refs, tokenizer="python", meteor=False)
    assert perfect["BLEU_4"] == pytest.approx(1.0, abs=1e-6) and perfect["ROUGE_L"] == pytest.approx(1.0)


def test_empty_and_missing_predictions_are_scored_and_counted():
    refs = {"a": "heart size is normal.", "b": "no pleural effusion.", "c": "lungs are clear."}
    preds = {"a": "heart size is normal.", "b": "   "}
    out = report_scores(refs, preds, tokenizer="python", meteor=False)
    assert out["n"] == 3 and out["n_empty_predictions"] == 2 and out["n_missing_predictions"] == 1
    assert out["ROUGE_L"] == pytest.approx(1 / 3)  # the empty ones score 0, not dropped
    cleaned = report_scores(refs, {"a": "ok?", "b": "x", "c": "lungs are clear."}, clean_predictions=True,
                            tokenizer="python", meteor=False)  # fmt: skip
    assert cleaned["n_empty_predictions"] == 2


@needs_java
@pytest.mark.skipif(not os.environ.get("VILA_M3_SLOW_TESTS"), reason="METEOR's JVM start takes ~20 s on CI CPUs")
def test_meteor_and_cider_are_reported():
    refs = {"a": "heart size is normal. no pleural effusion.", "b": "lungs are clear bilaterally."}
    out = report_scores(refs, {"a": "heart size normal. no effusion.", "b": ""}, meteor=True)
    assert 0 < out["METEOR"] < 1 and out["CIDEr"] > 0


def test_cider_is_reported_without_java():
    refs = {"a": "heart size is normal.", "b": "lungs are clear.", "c": "no effusion."}
    out = report_scores(
        refs, {"a": "heart size is normal.", "b": "effusion.", "c": ""}, tokenizer="python", meteor=False
    )
    assert out["CIDEr"] > 0 and "METEOR" not in out


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Findings: heart size is normal.\nImpression: no acute disease", "Heart size is normal. No acute disease."),
        ("the lungs are clear. the lungs are clear. Ok.", "The lungs are clear."),
        ("1. mild cardiomegaly. is there effusion? no pneumothorax!", "Mild cardiomegaly. No pneumothorax!"),
        ("Seen at 3 p.m. today. Size 2.5 cm", "Seen at 3 p.m. today. Size 2.5 cm."),
        ("ok. no.", ""),
    ],
)
def test_reference_cleaning(raw, cleaned):
    assert clean_report(raw) == cleaned


def test_auto_tokenizer_falls_back_to_python_without_java(monkeypatch, caplog):
    import vila_m3_core.evaluation.metrics.ptb_tokenizer as ptb

    monkeypatch.setattr(ptb, "java_available", lambda: False)
    assert ptb.ptb_tokenize(["Heart size is normal (stable)."]) == ["heart size is normal -lrb- stable -rrb-"]
    assert "fallback" in caplog.text


@needs_java
def test_a_failing_java_run_is_detected(monkeypatch):
    import subprocess

    from vila_m3_core.errors import VilaM3Error
    from vila_m3_core.evaluation.metrics import ptb_tokenizer as ptb

    real_popen = subprocess.Popen

    def broken_java(cmd, *args, **kwargs):  # java starts but the tokenizer class is missing: empty output
        return real_popen([*cmd[:3], "no.such.Class", *cmd[4:]], *args, **{**kwargs, "stderr": subprocess.DEVNULL})

    monkeypatch.setattr(subprocess, "Popen", broken_java)
    with pytest.raises(VilaM3Error, match="Java PTB tokenizer failed"):
        ptb.ptb_tokenize(["one.", "two."], backend="java")
    with pytest.raises(VilaM3Error, match="Java PTB tokenizer failed"):
        ptb.ptb_tokenize(["only one text."], backend="java")
    assert ptb.ptb_tokenize(["one.", "two."], backend="auto") == ["one", "two"]
