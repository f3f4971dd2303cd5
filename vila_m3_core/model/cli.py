"""``vila-m3 generate``: one VILA-M3 answer to a prompt about one or more images."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Sequence

from vila_m3_core.conversation import get_template
from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model.hub import DEFAULT_MODEL


def split_paths(value: str | Sequence[str] | None) -> list[str]:
    """``--image a.png,b.png`` or a list from fire -> list of paths."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def generate(
    prompt: str | None = None,
    image: str | Sequence[str] | None = None,
    model_path: str = DEFAULT_MODEL,
    revision: str | None = None,
    conv_mode: str | None = None,
    temperature: float = 0.0,
    top_p: float | None = None,
    num_beams: int = 1,
    max_new_tokens: int = 1024,
    min_new_tokens: int = 0,
    seed: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    json: bool = False,
) -> None:
    """Answer ``prompt`` about ``image`` (several: ``--image a.png,b.png``) with VILA-M3 and print the answer.

    Args:
        prompt: the question; without ``<image>`` tokens, one ``<image>\\n`` per image is put in front.
        image: 2D image file(s) (PNG, JPEG, ...); 3D volumes go through ``vila-m3 chat``.
        model_path: a local checkpoint folder or a Hub repo id (default MONAI/Llama3-VILA-M3-8B).
        revision: Hub revision (branch, tag or commit) to pin.
        conv_mode: template; default per checkpoint (3B/13B vicuna_v1, 8B llama_3).
        temperature, top_p, num_beams, max_new_tokens, min_new_tokens, seed: decoding (greedy by default).
        device: auto, cpu or cuda; dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16.
        json: print a JSON record (answer, model, revision, commit, token counts, seconds) instead of the text.
    """
    from vila_m3_core.model.generation import GenerationRequest, GenerationSettings
    from vila_m3_core.model.image_processing import load_image
    from vila_m3_core.model.vila import VilaM3

    if not prompt:
        raise VilaM3Error("Give a question with --prompt.")
    if conv_mode is not None:
        get_template(conv_mode)  # fail before loading gigabytes
    settings = GenerationSettings(temperature, top_p, num_beams, max_new_tokens, min_new_tokens, seed)
    paths = split_paths(image)
    images = [load_image(path) for path in paths]
    request = GenerationRequest(str(prompt), tuple(images))
    turns = request.as_turns()
    n_tokens = turns[0].text.count("<image>")
    if n_tokens != len(images):
        raise VilaM3Error(f"The prompt has {n_tokens} <image> token(s) but {len(images)} image(s) were given.")

    model = VilaM3.from_pretrained(model_path, revision=revision, dtype=dtype, device=device, conv_mode=conv_mode)
    output = model.generate(turns, return_details=True, **settings.__dict__)
    if not json:
        print(output.text)
        return
    location = model.location
    record = {
        "answer": output.text,
        "prompt": prompt,
        "images": paths,
        "model": location.repo_id or str(location.path),
        "revision": location.revision or ("main" if location.repo_id else None),
        "commit": location.commit,
        "conv_mode": model.conv_mode,
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "prompt_tokens": output.prompt_tokens,
        "new_tokens": output.new_tokens,
        "seconds": round(output.seconds, 4),
        "settings": settings.__dict__,
    }
    print(jsonlib.dumps(record, indent=2))
