"""Optional LLM standardisation of report text through any OpenAI-compatible chat endpoint (off by default).

The reference called NVIDIA NIM with ``stream=True`` and then indexed the stream like a dict, which fails with the
OpenAI v1 client. Here one non-streaming ``chat.completions.create`` call is made per report (or per chunk of
sentences when building the sentence pool), with the current client API, any base URL and model name, and the API
key read from an environment variable (never from the command line or the code).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

from data_prepare.phrases import load_phrases
from data_prepare.records import progress
from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger("data_prepare")


class RewriteError(RuntimeError):
    """One call to the endpoint failed or returned nothing usable."""


class ReportRewriter:
    """Calls an OpenAI-compatible chat endpoint with the prompts of ``phrases/report_rewrite.json``.

    Args:
        url: base URL of the endpoint, e.g. ``http://localhost:8000/v1`` or ``https://integrate.api.nvidia.com/v1``.
        model: model name served there, e.g. ``meta/llama-3.1-8b-instruct``.
        api_key_env: environment variable holding the API key; local servers accept any key.
        temperature, top_p, max_tokens: sampling settings (reference: top_p 0.7, max_tokens 2048; temperature 0
            by default here so that reruns give the same text, where the server honours it).
        seed: passed to the endpoint for servers that support seeded sampling.
        timeout: seconds per call.
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        top_p: float = 0.7,
        max_tokens: int = 2048,
        seed: int = 0,
        timeout: float = 120.0,
    ) -> None:
        try:
            from openai import OpenAI
        except ImportError as err:  # optional dependency
            raise VilaM3Error("report rewriting needs the openai package: pip install openai") from err
        if not url or not model:
            raise VilaM3Error("report rewriting needs both --rewrite_url and --rewrite_model")
        self.client = OpenAI(
            base_url=url, api_key=os.environ.get(api_key_env) or "not-needed", timeout=timeout, max_retries=2
        )
        self.model = model
        self.settings = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}
        self.prompts = load_phrases("report_rewrite")

    def complete(self, user: str) -> str:
        """The assistant text for one user message (system prompt from the phrase bank).

        Raises:
            RewriteError: the call failed or the answer was empty.
        """
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": self.prompts["system"]}, {"role": "user", "content": user}],
                stream=False,
                **self.settings,
            )
        except openai.OpenAIError as err:
            raise RewriteError(f"endpoint call failed: {type(err).__name__}: {err}") from err
        if not response.choices or not (response.choices[0].message.content or "").strip():
            raise RewriteError("endpoint returned an empty answer")
        return response.choices[0].message.content.strip()

    def rewrite(self, report: str, pool: list[str]) -> str:
        """``report`` with sentences replaced by their standard form from ``pool`` (the ``new report:`` prefix
        removed, case-insensitively)."""
        text = self.complete(self.prompts["rewrite"].format(pool="\n".join(pool), report=report))
        for prefix in self.prompts["answer_prefixes"]:
            if text.lower().startswith(prefix):
                text = text[len(prefix) :].strip()
        if not text:
            raise RewriteError("endpoint returned an empty report")
        return text

    def build_pool(self, reports: Iterable[str], chunk_size: int = 100) -> list[str]:
        """Grow a sentence pool from ``reports``: sentences (split on ``.``) are sent in chunks of ``chunk_size``
        with the pool so far, and the LLM's returned list becomes the new pool."""
        sentences = sorted({s.strip() + "." for r in reports for s in r.split(".") if s.strip()})
        pool: list[str] = []
        chunks = [sentences[i : i + chunk_size] for i in range(0, len(sentences), chunk_size)]
        for chunk in progress(chunks, "sentence pool"):
            answer = self.complete(self.prompts["pool"].format(pool="\n".join(pool), sentences="\n".join(chunk)))
            lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip() for line in answer.splitlines()]
            pool = [line for line in dict.fromkeys(lines) if line]
        return pool


def read_pool(path: str) -> list[str]:
    """A sentence pool file: one standard sentence per line (blank lines ignored)."""
    try:
        lines = [line.strip() for line in open(path, encoding="utf-8").read().splitlines()]
    except OSError as err:
        raise VilaM3Error(f"sentence pool {path} could not be read ({err})") from err
    pool = [line for line in lines if line]
    if not pool:
        raise VilaM3Error(f"sentence pool {path} is empty")
    return pool
