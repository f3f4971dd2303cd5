"""Find a checkpoint: a local folder, or a Hugging Face Hub repo id fetched (and cached) with huggingface_hub."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vila_m3_core.errors import VilaM3Error

log = logging.getLogger(__name__)

DEFAULT_MODEL = "MONAI/Llama3-VILA-M3-8B"
RELEASED_MODELS = ("MONAI/Llama3-VILA-M3-3B", "MONAI/Llama3-VILA-M3-8B", "MONAI/Llama3-VILA-M3-13B")
# What inference needs; trainer_state.json and the licences stay on the Hub.
CHECKPOINT_PATTERNS = ["config.json", "llm/*", "vision_tower/*", "mm_projector/*"]


@dataclass(frozen=True)
class CheckpointLocation:
    """Where a checkpoint was found.

    Attributes:
        path: the local folder holding ``config.json``, ``llm/``, ``vision_tower/``, ``mm_projector/``.
        repo_id: the Hub repo id, or ``None`` for a local folder.
        revision: the revision asked for (``None`` = the default branch).
        commit: the commit hash of the Hub snapshot, or ``None`` for a local folder.
    """

    path: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_checkpoint(
    path_or_repo_id: str | Path, revision: str | None = None, cache_dir: str | Path | None = None
) -> CheckpointLocation:
    """Return the local folder of a checkpoint, downloading a Hub repo into the Hugging Face cache when needed.

    A local folder wins over a repo id of the same spelling. Offline (``HF_HUB_OFFLINE=1`` or no network), a repo id
    resolves only from the cache; when it is not there the error names the repo, the cache and ``--model_path``.
    """
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return CheckpointLocation(path=local.resolve())
    name = str(path_or_repo_id)
    if not _looks_like_repo_id(name):
        raise VilaM3Error(
            f"Checkpoint folder not found: {local}. Pass a local folder or a Hub repo id like {DEFAULT_MODEL}."
        )

    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
    try:
        snapshot = snapshot_download(name, revision=revision, cache_dir=cache_dir, allow_patterns=CHECKPOINT_PATTERNS)
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise VilaM3Error(f"The Hub has no repo {name!r} at revision {revision or 'main'!r}: {err}") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as err:
        raise VilaM3Error(
            f"Cannot fetch {name} (revision {revision or 'main'}) from the Hugging Face Hub and it is not in the cache "
            f"{cache} ({type(err).__name__}). Either go online once so it is cached (or run "
            f"`hf download {name}`), or download the checkpoint folder (config.json, llm/, "
            "vision_tower/, mm_projector/) yourself and pass it with --model_path /path/to/folder."
        ) from None
    path = Path(snapshot)
    return CheckpointLocation(path=path, repo_id=name, revision=revision, commit=path.name)
