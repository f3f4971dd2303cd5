"""GREEN: the report-generation judge protocol as VILA-M3 used it (GREEN commit b1f2f8c).

A judge LM (default ``StanfordAIMI/GREEN-radllama2-7b``; any local causal LM is accepted) reads a fixed prompt
with the reference and candidate reports (each truncated to 200 words) and writes counts of clinically
significant / insignificant errors in six categories and the number of matched findings. Per pair,
``score = matched / (matched + sum of the six significant counts)`` (0 when nothing matched); the GREEN number is
the mean over scored pairs. The prompt, chat template and parsing rules are protocol (the judge was fine-tuned on
them): see ``/work/shared/reference/green_protocol.md`` and ``docs/evaluation.md``.

The pure parts (:func:`build_judge_prompt`, :func:`render_judge_chat`, :func:`parse_judge_output`,
:func:`green_pair_score`, :func:`summarize_green`) need no model; :class:`GreenJudge` runs the judge in batches
through :func:`vila_m3_core.model.generation.generate_text_batch`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

DEFAULT_JUDGE = "StanfordAIMI/GREEN-radllama2-7b"
MAX_WORDS = 200  # each report is cut to its first 200 whitespace-separated words
MAX_LENGTH = 2048  # prompt + output tokens, as the reference's generate(max_length=2048)
ERROR_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)

# Exact strings of the protocol (generated from the JSON-escaped text of the reference; do not reflow).
GREEN_PROMPT_TEMPLATE = (
    "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report composed by expert radiologists.\n"
    "\n"
    "    Process Overview: You will be presented with:\n"
    "\n"
    "    1. The criteria for making a judgment.\n"
    "    2. The reference radiology report.\n"
    "    3. The candidate radiology report.\n"
    "    4. The desired format for your assessment.\n"
    "\n"
    "    1. Criteria for Judgment:\n"
    "\n"
    "    For each candidate report, determine:\n"
    "\n"
    "    The count of clinically significant errors.\n"
    "    The count of clinically insignificant errors.\n"
    "\n"
    "    Errors can fall into one of these categories:\n"
    "\n"
    "    a) False report of a finding in the candidate.\n"
    "    b) Missing a finding present in the reference.\n"
    "    c) Misidentification of a finding's anatomic location/position.\n"
    "    d) Misassessment of the severity of a finding.\n"
    "    e) Mentioning a comparison that isn't in the reference.\n"
    "    f) Omitting a comparison detailing a change from a prior study.\n"
    "    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both reports.\n"
    "\n"
    "    2. Reference Report:\n"
    "    {REFERENCE}\n"
    "\n"
    "    3. Candidate Report:\n"
    "    {CANDIDATE}\n"
    "\n"
    "    4. Reporting Your Assessment:\n"
    "\n"
    "    Follow this specific format for your output, even if no errors are found:\n"
    "    ```\n"
    "    [Explanation]:\n"
    "    <Explanation>\n"
    "\n"
    "    [Clinically Significant Errors]:\n"
    "    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n"
    "    ....\n"
    "    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n"
    "\n"
    "    [Clinically Insignificant Errors]:\n"
    "    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n"
    "    ....\n"
    "    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n"
    "\n"
    "    [Matched Findings]:\n"
    "    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n"
    "    ```\n"
)

GREEN_CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['from'] == 'human' %}\n"
    "{{ '<|user|>\n"
    "' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'system' %}\n"
    "{{ '<|system|>\n"
    "' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'gpt' %}\n"
    "{{ '<|assistant|>\n"
    "'  + message['value'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)


def truncate_words(text: str, max_words: int = MAX_WORDS) -> str:
    """The first ``max_words`` whitespace-separated words of ``text`` re-joined with single spaces."""
    return " ".join(text.split()[:max_words])


def build_judge_prompt(reference: str, candidate: str) -> str:
    """The judge prompt for one pair (both reports truncated to :data:`MAX_WORDS` words)."""
    return GREEN_PROMPT_TEMPLATE.replace("{REFERENCE}", truncate_words(reference)).replace(
        "{CANDIDATE}", truncate_words(candidate)
    )


def render_judge_chat(prompt: str, eos_token: str) -> str:
    """Render ``[human: prompt, gpt: ""]`` through the GREEN chat template with a generation cue.

    Rendered with jinja2 the way Hugging Face renders chat templates (``trim_blocks``, ``lstrip_blocks``), so the
    result equals ``tokenizer.apply_chat_template(..., add_generation_prompt=True, tokenize=False)`` with the
    template installed.
    """
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"from": "human", "value": prompt}, {"from": "gpt", "value": ""}]
    return env.from_string(GREEN_CHAT_TEMPLATE).render(
        messages=messages, eos_token=eos_token, add_generation_prompt=True
    )


@dataclass(frozen=True)
class GreenParse:
    """Counts read from one judge answer.

    Attributes:
        significant: the six clinically significant error counts, categories (a)..(f).
        insignificant: the six clinically insignificant error counts.
        matched: the number of matched findings.
    """

    significant: tuple[int, ...]
    insignificant: tuple[int, ...]
    matched: int


_SECTION_END = r"(?:\n\s*\n|\Z)"


def _section(text: str, name: str) -> str | None:
    match = re.search(rf"\[{re.escape(name)}\]:\s*(.*?){_SECTION_END}", text, re.DOTALL)
    return match.group(1) if match else None


def _error_counts(text: str, name: str) -> tuple[int, ...]:
    """Six counts of an error section; a missing section or one that starts with "No" gives zeros."""
    counts = [0] * 6
    section = _section(text, name)
    if section is None or section.startswith("No"):
        return tuple(counts)
    prefixes = [f"({letter}) " for letter in "abcdef"]
    fragments = sorted(re.findall(r"\([a-f]\) .*", section))
    if not fragments:
        fragments = sorted(re.findall(r"\([1-6]\) .*", section))
        prefixes = [f"({n}) " for n in range(1, 7)]
    for position, prefix in enumerate(prefixes):
        for fragment in fragments:  # as the reference: the last fragment with a count wins on duplicates
            if fragment.startswith(prefix):
                number = re.findall(r"(?<=: )\b\d+\b(?=\.)", fragment)
                if number:
                    counts[position] = int(number[0])
    return tuple(counts)


def _matched_findings(text: str) -> int:
    section = _section(text, "Matched Findings")
    if section is None or section.startswith("No"):
        return 0
    number = re.findall(r"^\b\d+\b(?=\.)", section)
    return int(number[0]) if number else 0


def parse_judge_output(text: str) -> GreenParse:
    """Parse one judge answer into error counts and matched findings (missing sections count 0)."""
    return GreenParse(
        significant=_error_counts(text, "Clinically Significant Errors"),
        insignificant=_error_counts(text, "Clinically Insignificant Errors"),
        matched=_matched_findings(text),
    )


def green_pair_score(parsed: GreenParse) -> float:
    """``matched / (matched + sum(significant))``; 0 when there is no matched finding. In [0, 1]."""
    if parsed.matched == 0:
        return 0.0
    return parsed.matched / (parsed.matched + sum(parsed.significant))


def clean_judge_text(decoded: str) -> str:
    """Keep what follows the last ``<|assistant|>`` and remove leftover ``</s>`` / ``<unk>`` (the protocol)."""
    return decoded.split("<|assistant|>")[-1].replace("</s>", "").replace("<unk>", "").strip()


def summarize_green(parses: Sequence[GreenParse]) -> dict[str, Any]:
    """Mean GREEN score over the pairs plus the mean count per error category and of matched findings."""
    n = len(parses)
    scores = [green_pair_score(p) for p in parses]
    out: dict[str, Any] = {"green": sum(scores) / n if n else 0.0, "n": n}
    for i, name in enumerate(ERROR_CATEGORIES):
        out[f"significant_{name[1]}_mean"] = sum(p.significant[i] for p in parses) / n if n else 0.0
        out[f"insignificant_{name[1]}_mean"] = sum(p.insignificant[i] for p in parses) / n if n else 0.0
    out["matched_findings_mean"] = sum(p.matched for p in parses) / n if n else 0.0
    return out


class GreenJudge:
    """The GREEN judge: a causal LM and its tokenizer, set up as the protocol requires.

    The tokenizer appends EOS to every prompt (``add_eos_token=True``, as the reference), pads on the left with
    EOS; decoding is greedy and ``max_length`` 2048 counts prompt + output tokens.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"

    @classmethod
    def from_pretrained(
        cls, model_id_or_path: str = DEFAULT_JUDGE, device: str = "auto", dtype: str = "auto"
    ) -> GreenJudge:
        """Load a judge from the Hub or a local folder (float16 on CUDA, float32 on CPU unless ``dtype`` says)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from vila_m3_core.model.vila import resolve_device

        target = resolve_device(device)
        torch_dtype = (torch.float16 if target.type == "cuda" else torch.float32) if dtype == "auto" else dtype
        if isinstance(torch_dtype, str):
            torch_dtype = getattr(torch, torch_dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id_or_path, use_fast=True)
            model = AutoModelForCausalLM.from_pretrained(model_id_or_path, dtype=torch_dtype).to(target).eval()
        except OSError as err:
            raise VilaM3Error(
                f"Could not load the GREEN judge {model_id_or_path!r} ({err}). Pass a local folder with "
                "--green_model, or make sure the Hub repo is cached / reachable."
            ) from err
        return cls(model, tokenizer)

    def _prompt_text(self, reference: str, candidate: str) -> str:
        text = render_judge_chat(build_judge_prompt(reference, candidate), self.tokenizer.eos_token)
        # add_eos_token=True in the reference tokenizer: every encoded prompt ends with EOS after the cue.
        return text + self.tokenizer.eos_token

    def judge(
        self,
        references: Sequence[str],
        candidates: Sequence[str],
        batch_size: int = 8,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Raw judge answers (cleaned with :func:`clean_judge_text`), one per pair, in input order.

        ``max_new_tokens`` caps the answer length below the protocol's budget (``None`` = protocol: the answer may
        fill ``max_length`` 2048 minus the prompt). Within a batch the budget is that of its longest prompt, so a
        batched answer can differ from a one-by-one answer only when it runs into that budget.
        """
        from vila_m3_core.model.generation import generate_text_batch

        if len(references) != len(candidates):
            raise VilaM3Error(f"{len(references)} references but {len(candidates)} candidates for GREEN")
        prompts = [self._prompt_text(r, c) for r, c in zip(references, candidates, strict=True)]
        lengths = [len(self.tokenizer(p, add_special_tokens=True).input_ids) for p in prompts]
        answers: list[str] = [""] * len(prompts)
        # Group by prompt length so that each batch gets the protocol's max_length budget for its longest prompt.
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            room = MAX_LENGTH - max(lengths[i] for i in batch)
            if max_new_tokens is not None:
                room = min(room, max_new_tokens)
            if room < 1:
                logger.warning("GREEN prompt of %d tokens leaves no room to answer; scoring 0", max(lengths))
                continue
            texts = generate_text_batch(
                self.model, self.tokenizer, [prompts[i] for i in batch], batch_size=len(batch), max_new_tokens=room
            )
            for i, text in zip(batch, texts, strict=True):
                answers[i] = clean_judge_text(text)
        return answers

    def score(
        self,
        references: Sequence[str],
        candidates: Sequence[str],
        batch_size: int = 8,
        max_new_tokens: int | None = None,
    ) -> dict[str, Any]:
        """GREEN over the pairs: ``summarize_green`` plus ``per_pair`` (counts, score, raw answer).

        Pairs with an empty reference are skipped (as VILA-M3's driver) and counted in ``n_skipped_empty_reference``.
        """
        keep = [i for i, ref in enumerate(references) if ref.strip()]
        answers = self.judge(
            [references[i] for i in keep], [candidates[i] for i in keep], batch_size, max_new_tokens=max_new_tokens
        )
        parses = [parse_judge_output(a) for a in answers]
        summary = summarize_green(parses)
        summary["n_skipped_empty_reference"] = len(references) - len(keep)
        summary["per_pair"] = [
            {"index": i, "score": green_pair_score(p), **asdict(p), "judge_output": a}
            for i, p, a in zip(keep, parses, answers, strict=True)
        ]
        return summary
