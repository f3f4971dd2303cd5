"""The VILA-M3 bundle workflow: the agent driven by a MONAI Ignite evaluator, so that ``python -m monai.bundle run``
works with the usual properties (``dataset``, ``evaluator``, ``network_def``, ``inferer``), handlers and
``--tracking mlflow``.

One dataset item is one request ``{"id", "image", "prompt", ...}``; each answer goes to ``<output_dir>/<id>/``
(``answer.json``, ``trace.json``, the expert files) and, for batch runs, one line of ``answers.jsonl``. The experts
come from the expert bundles' own ``configs/inference.json`` (their ``expert`` item), so each expert is configured
in one place.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines import Evaluator
from monai.inferers import Inferer

from vila_m3_core.devices import resolve_device
from vila_m3_core.errors import VilaM3Error

logger = logging.getLogger(__name__)

#: expert bundle folder -> the tag name the VLM uses
EXPERT_BUNDLES: dict[str, str] = {"expert_cxr": "CXR", "expert_vista3d": "VISTA3D", "expert_brats": "BRATS"}


def expert_bundles_dir(bundle_root: str | Path = ".") -> str:
    """Folder holding the expert bundles: next to this bundle (``<bundle_root>/..``), else ``<bundle_root>/bundles``
    (running from the repository root), else this repository's ``bundles/``."""
    from vila_m3_core.bundles.runner import BUNDLES_DIR

    root = Path(bundle_root)
    for candidate in (root / "..", root / "bundles", BUNDLES_DIR):
        if all((candidate / folder / "configs" / "inference.json").is_file() for folder in EXPERT_BUNDLES):
            return str(candidate.resolve())
    raise VilaM3Error(
        f"Expert bundles ({', '.join(EXPERT_BUNDLES)}) not found next to {root.resolve()}; pass --expert_bundles_dir "
        'or --experts "[]" to run without experts.'
    )


def expert_from_bundle(bundle_dir: str | Path, overrides: Mapping[str, Any] | None = None, device: str = "auto") -> Any:
    """Build the expert that an expert bundle defines (the ``expert`` item of its ``configs/inference.json``).

    Args:
        bundle_dir: the expert bundle folder (``bundles/expert_vista3d``, ...).
        overrides: config overrides for that bundle (``{"encoder_embed_dim": 8}``); unknown keys are refused.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; sets the bundle's ``device``.
    """
    from vila_m3_core.bundle_config import parsed_item, read_bundle_config

    parser = read_bundle_config(bundle_dir, overrides, device)
    return parsed_item(parser, "expert", Path(bundle_dir) / "configs" / "inference.json")


def experts_from_bundles(
    bundles_dir: str | Path,
    enabled: Sequence[str] | str = ("CXR", "VISTA3D", "BRATS"),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """The enabled experts by tag name, each built from its expert bundle in ``bundles_dir``.

    Args:
        bundles_dir: folder that holds ``expert_cxr``, ``expert_vista3d``, ``expert_brats``.
        enabled: tag names to build (``[]`` = none); case-insensitive; a comma-separated string is accepted.
        overrides: per bundle folder name (or tag name), config overrides for that bundle.
        device: device of the experts.
    """
    if isinstance(enabled, str):
        enabled = [part for part in re.split(r"[,\s]+", enabled) if part]
    wanted = {name.upper() for name in enabled}
    unknown = wanted - set(EXPERT_BUNDLES.values())
    if unknown:
        raise VilaM3Error(f"Unknown expert(s) {sorted(unknown)}; available: {sorted(EXPERT_BUNDLES.values())}.")
    overrides = {str(k): v for k, v in (overrides or {}).items()}
    experts = {}
    for folder, tag in EXPERT_BUNDLES.items():
        if tag in wanted:
            bundle_overrides = overrides.get(folder) or overrides.get(tag) or overrides.get(tag.lower()) or {}
            experts[tag] = expert_from_bundle(Path(bundles_dir) / folder, bundle_overrides, device)
    return experts


def load_vlm(
    model_path: str,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    conv_mode: str | None = None,
) -> Any:
    """Load VILA-M3 from a local folder or a Hub repo id (downloaded into the Hub cache on first use)."""
    from vila_m3_core.model import VilaM3

    revision = None if revision in (None, "", "main") else revision
    return VilaM3.from_pretrained(model_path, revision=revision, dtype=dtype, device=device, conv_mode=conv_mode)


def _image_argument(image: Any) -> Any:
    """``"a,b,c,d"`` -> four MRI paths; a list stays a list; anything else unchanged."""
    if isinstance(image, str) and "," in image:
        return [part.strip() for part in image.split(",") if part.strip()]
    if isinstance(image, (list, tuple)):
        return [str(part) for part in image]
    return image


def single_request(image: Any, prompt: str, request_id: str = "answer") -> list[dict[str, Any]]:
    """The one-request dataset of ``inference.json``, checked: an image and a prompt are required."""
    from vila_m3_core.bundles.inputs import require_readable_file

    if not prompt or not str(prompt).strip():
        raise VilaM3Error("Give a question with --prompt.")
    image = _image_argument(image)
    if isinstance(image, list):
        if len(image) != 4:
            raise VilaM3Error(f"Several images must be the four MRI sequences t1ce, t1, t2, flair; got {len(image)}.")
        for part in image:
            require_readable_file(part)
    else:
        require_readable_file(image)
    return [{"id": request_id, "image": image, "prompt": str(prompt)}]


def read_requests(jsonl_file: str | Path) -> list[dict[str, Any]]:
    """Requests of ``batch_inference.json``: one JSON object per line with ``image`` and ``prompt`` (optional ``id``,
    ``modality``, ``slice_index``). Bad lines are errors that name the line; blank lines are skipped."""
    path = Path(jsonl_file)
    if not path.is_file():
        raise VilaM3Error(f"Requests file {path} not found (pass --requests_file requests.jsonl).")
    requests, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise VilaM3Error(f"{path}:{number} is not valid JSON: {err}") from None
        if not isinstance(item, dict) or not item.get("prompt") or not item.get("image"):
            raise VilaM3Error(f"{path}:{number} needs an 'image' and a 'prompt'.")
        item = dict(item, image=_image_argument(item["image"]))
        item["id"] = str(item.get("id", f"request_{number:05d}"))
        if item["id"] in seen or not re.fullmatch(r"[\w.\-]+", item["id"]):
            raise VilaM3Error(f"{path}:{number}: id {item['id']!r} is repeated or not a safe file name.")
        seen.add(item["id"])
        requests.append(item)
    if not requests:
        raise VilaM3Error(f"{path} holds no requests.")
    return requests


def collate_requests(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep requests as a list of dicts (images are paths of different kinds; nothing to stack)."""
    return list(batch)


class _FirstRoundCaptured(Exception):
    """Raised by :class:`_BatchingVLM` in capture mode once the first-round conversation is recorded."""


class _BatchingVLM:
    """Stands in for the VLM so that the agent's first generation of many requests can run as one batch.

    Capture mode: ``generate`` records the conversation the agent built and stops the agent. Replay mode: the first
    ``generate`` returns the batched output prepared for the current request; later rounds (after an expert) call
    the real VLM. The agent itself (prompt assembly, parsing, experts, trace) is used unchanged.
    """

    def __init__(self, vlm: Any) -> None:
        self.vlm = vlm
        self.capture = False
        self.captured: Any = None
        self.pending: str | None = None

    def generate(self, turns: Any, **generation: Any) -> str:
        if self.capture:
            self.captured = list(turns)
            raise _FirstRoundCaptured()
        if self.pending is not None:
            text, self.pending = self.pending, None
            return text
        return self.vlm.generate(turns, **generation)


class AgentInferer(Inferer):
    """Runs the VILA-M3 agent on one request: generate, call an expert if the model asks for one, answer.

    Args:
        experts: ready experts by tag name (from :func:`experts_from_bundles`).
        max_rounds: expert calls per request (1 = reference).
        generation: generation keyword arguments (``temperature``, ``max_new_tokens``, ...).
        use_cards: put the model cards in the prompt (the released checkpoints expect them).
        segmented_rule: the reference's "segmented" rule (no answer round after a pure segmentation request).
    """

    def __init__(
        self,
        experts: Mapping[str, Any] | None = None,
        max_rounds: int = 1,
        generation: Mapping[str, Any] | None = None,
        use_cards: bool = True,
        segmented_rule: bool = True,
    ) -> None:
        super().__init__()
        self.experts = dict(experts or {})
        self.max_rounds = max_rounds
        self.generation = dict(generation or {})
        self.use_cards = use_cards
        self.segmented_rule = segmented_rule
        self._agent: Any = None

    def agent(self, network: Any, output_dir: Path) -> Any:
        """The agent (built once per network); only the enabled experts can run, the others answer "not available"."""
        if self._agent is None or self._agent.vlm is not network:
            from vila_m3_core.agent import Agent

            self._agent = Agent(
                network,
                experts=self.experts,
                enabled_experts=list(self.experts),
                use_cards=self.use_cards,
                max_rounds=self.max_rounds,
                segmented_keyword="segmented" if self.segmented_rule else None,
                output_dir=output_dir,
                generation=self.generation,
            )
        return self._agent

    def __call__(  # type: ignore[override]
        self, request: Mapping[str, Any], network: Any, output_dir: Path, agent: Any = None
    ) -> dict[str, Any]:
        """Answer ``request`` and write ``answer.json`` and ``trace.json`` into ``output_dir``; returns the record."""
        output_dir.mkdir(parents=True, exist_ok=True)
        agent = agent if agent is not None else self.agent(network, output_dir)
        agent.reset()
        agent.output_dir = output_dir  # each request keeps its expert files in its own folder
        try:
            answer = agent.ask(
                request["image"],
                request["prompt"],
                modality=request.get("modality"),
                slice_index=request.get("slice_index", "middle"),
            )
        finally:
            if agent.last_trace is not None:
                agent.last_trace.write(output_dir / "trace.json")
        record = {
            "id": request.get("id"),
            "image": request["image"],
            "prompt": request["prompt"],
            "answer": answer.text,
            "notice": answer.notice,
            "modality": agent.current_input.modality if agent.current_input else None,
            "files": answer.files,
            "seconds": answer.trace.summary(),
            "trace": str(output_dir / "trace.json"),
        }
        (output_dir / "answer.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (output_dir / "answer.txt").write_text(answer.text + "\n", encoding="utf-8")
        return record

    def answer_batch(
        self, requests: Sequence[Mapping[str, Any]], network: Any, folders: Sequence[Path]
    ) -> list[dict[str, Any] | VilaM3Error]:
        """Answer many requests with the first generation round batched (``network.generate_batch``).

        Each request's first-round conversation is built by the agent itself (capture pass), all of them are
        generated in one padded batch, then each request runs through the agent with its first output replayed;
        expert calls and answer rounds then run per request. Returns a record, or the error, per request.
        """
        from vila_m3_core.model import GenerationRequest

        if self._agent is None or not isinstance(self._agent.vlm, _BatchingVLM) or self._agent.vlm.vlm is not network:
            self._agent = None
            self.agent(_BatchingVLM(network), folders[0])
        agent, proxy = self._agent, self._agent.vlm
        conversations: list[Any] = []
        results: list[dict[str, Any] | VilaM3Error | None] = [None] * len(requests)
        proxy.capture = True
        for index, (request, folder) in enumerate(zip(requests, folders)):
            agent.reset()
            agent.output_dir = folder
            try:
                agent.ask(
                    request["image"],
                    request["prompt"],
                    modality=request.get("modality"),
                    slice_index=request.get("slice_index", "middle"),
                )
            except _FirstRoundCaptured:
                conversations.append((index, proxy.captured))
            except VilaM3Error as err:
                results[index] = err
        proxy.capture = False
        outputs = (
            network.generate_batch(
                [GenerationRequest(turns) for _, turns in conversations],
                batch_size=max(1, len(conversations)),
                **agent.generation,
            )
            if conversations
            else []
        )
        for (index, _), text in zip(conversations, outputs):
            proxy.pending = text
            try:
                results[index] = self(requests[index], network, folders[index], agent=agent)
            except VilaM3Error as err:
                results[index] = err
            finally:
                proxy.pending = None
        return [r if r is not None else VilaM3Error("no answer produced") for r in results]


class AgentEvaluator(Evaluator):
    """Ignite evaluator over a dataset of requests; ``network`` is the VLM and ``inferer`` an :class:`AgentInferer`.

    Args:
        output_dir: answers go to ``<output_dir>/<id>/``; with ``answers_file`` also one JSON line per request.
        answers_file: JSONL file name under ``output_dir`` (``None``: none).
        **kwargs: passed to :class:`monai.engines.Evaluator` (``device``, ``val_data_loader``, ``val_handlers``...).
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader: Any,
        network: Any,
        inferer: AgentInferer,
        output_dir: str,
        answers_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(device=resolve_device(device), val_data_loader=val_data_loader, decollate=False, **kwargs)
        self.network = network
        self.inferer = inferer
        self.output_dir = Path(output_dir)
        self.answers_file = self.output_dir / answers_file if answers_file else None
        self.failed = 0
        if self.answers_file is not None and self.answers_file.exists():
            self.answers_file.unlink()  # a new run writes a new file; lines are appended as answers arrive

    def _iteration(self, engine: Any, batchdata: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        folders = [self.output_dir / str(request.get("id", "answer")) for request in batchdata]
        if len(batchdata) > 1:
            outcomes = self.inferer.answer_batch(batchdata, self.network, folders)
        else:
            try:
                outcomes = [self.inferer(batchdata[0], self.network, folders[0])]
            except VilaM3Error as err:
                outcomes = [err]
        records = []
        for request, outcome in zip(batchdata, outcomes):
            if isinstance(outcome, VilaM3Error):
                if self.answers_file is None:
                    raise outcome
                # batch runs keep going: the failure is recorded in the answers file and counted
                self.failed += 1
                logger.error("request %s failed (%d so far): %s", request.get("id"), self.failed, outcome)
                outcome = {
                    "id": request.get("id"),
                    "image": request.get("image"),
                    "prompt": request.get("prompt"),
                    "answer": None,
                    "error": str(outcome),
                }
            records.append(outcome)
            if self.answers_file is not None:
                self.answers_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.answers_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(outcome) + "\n")
        engine.state.output = {"answers": records}
        return engine.state.output
