"""Model-core speed and memory ratios, measured in one run on CPU (the machines are noisy: compare ratios).

1. Throughput: 32 requests at batch size 8 vs one by one (target >= 4x).
2. Overhead of the VLM path (image encoding + splice + generate from embeddings) vs the bare LLM generating from
   ids of the same prompt length (target <= 1.10x).
3. Peak RSS growth while loading a checkpoint vs its weight bytes (target <= 1.2x), on a ~1B-parameter random
   checkpoint in the released layout (bfloat16), measured in a fresh subprocess.

Usage: python benchmarks/bench_model.py [--skip-memory] [--memory-layers 16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vila_m3_core.model import GenerationRequest, VilaM3, build_tiny_checkpoint
from vila_m3_core.model.tokenization import tokenize_turns


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (128, 128, 3), dtype=np.uint8))


def throughput(model: VilaM3, n: int = 32, batch: int = 8, new_tokens: int = 32) -> float:
    requests = [GenerationRequest(f"Question {i}: is there an effusion?", (_image(i),)) for i in range(n)]
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
    model.generate_batch(requests[:2], batch_size=2, **settings)  # warm-up
    start = time.perf_counter()
    for request in requests:
        model.generate(request.turns, request.images, **settings)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    model.generate_batch(requests, batch_size=batch, **settings)
    batched = time.perf_counter() - start
    print(f"[throughput] {n} requests x {new_tokens} tokens: one by one {one_by_one:.2f} s, batch {batch} "
          f"{batched:.2f} s -> {one_by_one / batched:.2f}x (target >= 4x)")  # fmt: skip
    return one_by_one / batched


def vlm_overhead(model: VilaM3, new_tokens: int = 32, repeats: int = 5) -> float:
    from vila_m3_core.conversation import Turn

    turns = [Turn("user", "<image>\nDescribe the image.", [_image(0)])]
    n_positions = len(tokenize_turns(turns, model.tokenizer, model.conv_mode)) - 1 + model.tokens_per_image
    ids = torch.randint(3, 1000, (1, n_positions))
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
    model.generate(turns, **settings)

    def best_of(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        llm_time = best_of(lambda: model.llm.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, pad_token_id=0))  # fmt: skip
    vlm_time = best_of(lambda: model.generate(turns, **settings))
    print(f"[overhead] prompt of {n_positions} positions, {new_tokens} new tokens: bare LLM {llm_time * 1e3:.1f} ms, "
          f"VLM {vlm_time * 1e3:.1f} ms -> {vlm_time / llm_time:.3f}x (target <= 1.10x)")  # fmt: skip
    return vlm_time / llm_time


_LOAD_SCRIPT = """
import resource, sys, torch
from vila_m3_core.model import VilaM3
import transformers, safetensors  # imports are part of the baseline

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

base = rss()
model = VilaM3.from_pretrained(sys.argv[1], dtype="bfloat16", device="cpu")
with torch.no_grad():  # touch every page: memory-mapped weights count once they are resident
    for p in model.parameters():
        p.view(-1)[::256].float().sum()
def high_water():  # VmHWM is per address space (ru_maxrss would inherit the parent's peak across fork + exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

print(base, rss(), high_water())
"""


def load_memory(layers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = build_tiny_checkpoint(Path(tmp) / "ckpt-1b", flavor="vicuna", hidden_size=2048, vision_hidden_size=1152,
                                     dtype=torch.bfloat16, init_std=0.02, num_layers=layers)  # fmt: skip
        weight_bytes = sum(p.stat().st_size for p in root.rglob("*.safetensors"))
        out = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(root)], capture_output=True, text=True,
                             check=True)  # fmt: skip
        base, resident, peak = map(int, out.stdout.split()[-3:])
    ratio = (peak - base) / weight_bytes
    print(f"[memory] weights {weight_bytes / 2**30:.2f} GiB on disk; RSS after loading +{(resident - base) / 2**30:.2f} "
          f"GiB, peak +{(peak - base) / 2**30:.2f} GiB -> peak/weights {ratio:.2f}x (target <= 1.2x)")  # fmt: skip
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-layers", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = VilaM3.from_pretrained(build_tiny_checkpoint(Path(tmp) / "tiny", flavor="vicuna"), device="cpu")
        throughput(model)
        vlm_overhead(model)
    if not args.skip_memory:
        load_memory(args.memory_layers)


if __name__ == "__main__":
    main()
