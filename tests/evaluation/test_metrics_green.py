"""GREEN: exact protocol strings, parsing of recorded judge outputs, the score, and the judge run in batches on a
tiny random causal LM (the LLM of the tiny VILA-M3 checkpoint)."""

import hashlib
import json
from pathlib import Path

import pytest

from vila_m3_core.evaluation.metrics.green import (
    GREEN_CHAT_TEMPLATE,
    GREEN_PROMPT_TEMPLATE,
    GreenJudge,
    GreenParse,
    build_judge_prompt,
    clean_judge_text,
    green_pair_score,
    parse_judge_output,
    render_judge_chat,
    summarize_green,
    truncate_words,
)

CASES = json.loads((Path(__file__).parent / "fixtures" / "green_judge_outputs.json").read_text())


def test_prompt_template_is_the_protocol_string():
    # length and digest of the JSON-decoded prompt of green_protocol.md (every space and newline counts)
    assert len(GREEN_PROMPT_TEMPLATE) == 1866
    digest = hashlib.sha256(GREEN_PROMPT_TEMPLATE.encode()).hexdigest()
    assert digest == "07e39538f210774c0821e9a41a22b18ee81e374f2915a8cfa2c10005c977025f"
    assert GREEN_PROMPT_TEMPLATE.count("{REFERENCE}") == GREEN_PROMPT_TEMPLATE.count("{CANDIDATE}") == 1


def test_reports_are_truncated_to_200_words():
    long = " ".join(f"w{i}" for i in range(250))
    assert truncate_words("a  b\n c") == "a b c"
    prompt = build_judge_prompt(long, "short  candidate")
    assert "w199" in prompt and "w200" not in prompt
    assert "\n    short candidate\n" in prompt


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_parse_recorded_judge_outputs(case):
    text = clean_judge_text(case["raw_decoded"]) if "raw_decoded" in case else case["output"]
    assert text == case["output"]
    parsed = parse_judge_output(text)
    assert parsed == GreenParse(tuple(case["significant"]), tuple(case["insignificant"]), case["matched"])
    assert green_pair_score(parsed) == pytest.approx(case["score"])


def test_summary_means():
    parses = [parse_judge_output(c["output"]) for c in CASES]
    summary = summarize_green(parses)
    assert summary["green"] == pytest.approx(sum(c["score"] for c in CASES) / len(CASES))
    assert summary["significant_a_mean"] == pytest.approx(sum(c["significant"][0] for c in CASES) / len(CASES))
    assert summary["n"] == len(CASES)


def test_chat_rendering_equals_hugging_face_apply_chat_template(tiny_llama3):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama3 / "llm")
    tokenizer.chat_template = GREEN_CHAT_TEMPLATE
    messages = [{"from": "human", "value": "PROMPT"}, {"from": "gpt", "value": ""}]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_judge_chat("PROMPT", tokenizer.eos_token) == expected
    assert expected.startswith("<|user|>\nPROMPT" + tokenizer.eos_token)


def test_judge_runs_in_batches_on_a_tiny_causal_lm(tiny_llama3):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama3 / "llm").eval()
    model.generation_config.max_length = None
    judge = GreenJudge(model, AutoTokenizer.from_pretrained(tiny_llama3 / "llm"))
    refs = ["Heart size is normal. No effusion.", "Left lower lobe opacity.", "", "Clear lungs."]
    hyps = ["Heart normal.", "No acute disease.", "Anything.", "Clear lungs bilaterally."]
    batched = judge.judge(refs, hyps, batch_size=4, max_new_tokens=6)
    single = judge.judge(refs, hyps, batch_size=1, max_new_tokens=6)
    result = judge.score(refs, hyps, batch_size=2, max_new_tokens=6)
    assert batched == single
    assert result["n"] == 3 and result["n_skipped_empty_reference"] == 1
    assert [p["index"] for p in result["per_pair"]] == [0, 1, 3]
    assert 0.0 <= result["green"] <= 1.0
