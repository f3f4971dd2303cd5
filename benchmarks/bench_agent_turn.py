"""Time one agent turn (generate -> VISTA3D -> generate) and its split into generation / expert / rendering.

Runs offline on tiny random weights with the real architectures (a tiny VILA-M3 checkpoint, VISTA3D with a
narrow encoder) on a synthetic CT volume, twice with the same Agent: the first turn builds the expert network,
the second reuses it. Prints the trace's time split for both turns and the cold/warm ratio of the expert phase.

    .venv/bin/python benchmarks/bench_agent_turn.py [--device cpu|cuda] [--size 96] [--flavor vicuna|llama3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


class DecidingVLM:
    """The real tiny VLM whose answers are replaced by scripted ones (a random model cannot choose an expert)."""

    def __init__(self, vlm, decisions):
        self.vlm, self.decisions = vlm, list(decisions)

    def generate(self, turns, return_details=False, **gen):
        output = self.vlm.generate(turns, return_details=True, **gen)
        decision = self.decisions.pop(0) if self.decisions else None
        if decision is not None:
            output.text = decision
        return output if return_details else output.text


def main() -> None:
    import nibabel as nib

    from vila_m3_core.agent import Agent
    from vila_m3_core.bundles.synthetic import write_vista3d_weights
    from vila_m3_core.model import VilaM3, build_tiny_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64, help="CT volume side in voxels (1.5 mm)")
    parser.add_argument("--flavor", default="vicuna", choices=["vicuna", "llama3"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vila_m3_bench_"))
    volume = np.full((args.size, args.size, args.size // 2), -1000.0, dtype=np.float32)
    volume[args.size // 4 : 3 * args.size // 4, args.size // 4 : 3 * args.size // 4, 4:-4] = 40.0
    ct_path = work / "ct_bench.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([1.5, 1.5, 1.5, 1.0])), str(ct_path))
    write_vista3d_weights(work / "vista3d" / "models" / "model.pt", encoder_embed_dim=8)
    checkpoint = build_tiny_checkpoint(work / "tiny", flavor=args.flavor)
    model = VilaM3.from_pretrained(checkpoint, device=args.device)
    trigger = "This looks like a CT image. Let me trigger <VISTA3D(organs)>. "
    vlm = DecidingVLM(model, [trigger, None, trigger, None])
    config = {"VISTA3D": {"bundle_dir": str(work / "vista3d"), "encoder_embed_dim": 8, "device": args.device}}
    agent = Agent(vlm, expert_config=config, output_dir=work / "out", generation={"max_new_tokens": 8})

    rows = []
    for label in ("cold", "warm"):
        agent.reset()
        start = time.perf_counter()
        answer = agent.ask(str(ct_path), "Segment the organs.")
        wall = time.perf_counter() - start
        split = answer.trace.summary()
        phases = answer.trace.of_type("expert")[0]["seconds"]
        rows.append((label, wall, split, phases))
        print(
            f"{label}: wall {wall:.2f}s | generation {split['generation']:.2f}s | expert {split['expert']:.2f}s "
            f"(load {phases.get('load', 0.0):.3f}s, inference {phases.get('inference', 0.0):.2f}s) | "
            f"rendering {split['rendering']:.2f}s | input loading {split['input_loading']:.2f}s"
        )
    cold_load, warm_load = rows[0][3].get("load", 0.0), rows[1][3].get("load", 0.0)
    print(f"expert load phase cold/warm: {cold_load / max(warm_load, 1e-9):.1f}x (network built once per Agent)")
    print(f"whole turn cold/warm: {rows[0][1] / rows[1][1]:.2f}x")
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
