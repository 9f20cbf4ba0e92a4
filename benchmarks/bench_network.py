"""The network stylizer (propagation.method network, restyle.network) side by side with patch
propagation and flow warping, and what it costs.

Parts (all by default, or pick with ``--parts``):

* ``workflow``: the demo through the workflow (snakemake, default config, 2 cores) with
  ``propagation.method`` patch, warp and network (keyframes carried or replaced), for the
  default look and for ``strokes``: metrics.json's E_warp, PSNR and sharpness against the
  per-frame stylization on the non-keyframes, the run's wall time and the training jobs' time.
* ``cost``: at 512x512 on the ``astronaut`` clip (benchmarks/clips.py), training on a scene of
  10 keyframes (default settings), and rendering s/frame with and without carrying the
  keyframes' residuals; each in a fresh process, whose peak memory is reported.

Needs the ``network`` and ``demo`` extras.  Takes about 25 minutes on 2 cores.

Usage: python benchmarks/bench_network.py [--parts workflow cost]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clips import make_clip
from common import DEFAULTS, machine, render_demo

from restyle import network, preflight
from restyle.stylize import BuiltinStylizer

LOOK = DEFAULTS["stylizer"]["look"]
WORKFLOW_CASES = [(LOOK, "patch", None), (LOOK, "warp", None), (LOOK, "network", "carry"), (LOOK, "network", "replace"),
                  ("strokes", "patch", None), ("strokes", "network", "carry")]
COST_SIZE, COST_KEYFRAMES, COST_INTERVAL = 512, 10, 10


def part_workflow() -> None:
    print("\n## The demo through the workflow: network against patch propagation and flow warping\n")
    print("| look | propagation | keyframes | E_warp output | input's own | per-frame stylization "
          "| PSNR vs per-frame (dB) | sharpness | wall s | training s per scene |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for look, method, keyframes in WORKFLOW_CASES:
        network = {"keyframes": keyframes} if keyframes else {}
        with tempfile.TemporaryDirectory() as tmp:
            m = render_demo(Path(tmp), {"stylizer": {"look": look}, "propagation": {"method": method}, "network": network})
        e, f = m["e_warp"], m["fidelity"]
        training = m["timings"].get("train_network")
        train_s = f"{training['wall_s'] / training['jobs']:.0f}" if training else "-"
        print(f"| {look} | {method} | {keyframes or '-'} | {e['output']:.3e} | {e['input']:.3e} "
              f"| {e['per_frame_stylization']:.3e} | {f['psnr_db_vs_per_frame_stylization']:.2f} "
              f"| {f['sharpness_ratio_vs_per_frame_stylization']:.3f} | {m['wall_s']:.0f} | {train_s} |", flush=True)


def cost_case(case: str) -> dict:
    """One measurement of the cost part, in this process."""
    n_frames = (COST_KEYFRAMES - 1) * COST_INTERVAL + 1
    frames = make_clip("astronaut", COST_SIZE, COST_SIZE, n_frames=n_frames)
    keys = list(range(0, n_frames, COST_INTERVAL))
    stylizer = BuiltinStylizer(LOOK)
    styled = {k: stylizer(frames[k], k) for k in keys}
    settings = network.NetworkSettings(**preflight.network_settings(DEFAULTS))
    began, cpu = time.perf_counter(), time.process_time()
    if case == "train":
        _, report = network.train([frames[k] for k in keys], [styled[k] for k in keys], frames, settings, threads=2)
        n = 1
    else:
        model, _ = network.train([frames[0]], [styled[0]], (), dataclasses.replace(settings, iterations=1), threads=2)
        began, cpu = time.perf_counter(), time.process_time()
        targets = range(1, 11)
        for t in targets:
            rendered = network.stylize_frame(model, frames[t], settings.guides, threads=2)
            if case == "render_carry":
                neighbours = [(w, frames[k], network.residual(styled[k], rendered))
                              for k, w in network.keyframe_weights(t, 0, COST_INTERVAL)]
                network.carry_keyframe_residuals(frames[t], rendered, neighbours, settings.flow_preset)
        n = len(targets)
    return {"s": (time.perf_counter() - began) / n, "cpu_s": (time.process_time() - cpu) / n,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def part_cost() -> None:
    print(f"\n## Cost at {COST_SIZE}x{COST_SIZE} (astronaut clip, {LOOK}, 2 threads, default settings)\n")
    print("| what | wall s | CPU s | peak memory of the process MB |")
    print("|---|---|---|---|")
    labels = {"train": f"training, a scene of {COST_KEYFRAMES} keyframes (per scene)",
              "render": "rendering (per frame)", "render_carry": "rendering with the keyframes' residuals carried (per frame)"}
    for case, label in labels.items():
        out = subprocess.run([sys.executable, __file__, "--cost-case", case], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {label} | {r['s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=["workflow", "cost"], default=["workflow", "cost"])
    parser.add_argument("--cost-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_case:
        print(json.dumps(cost_case(args.cost_case)))
        return
    print(machine())
    began = time.perf_counter()
    for part in args.parts:
        {"workflow": part_workflow, "cost": part_cost}[part]()
    print(f"\n(all parts: {time.perf_counter() - began:.0f} s; load average now {open('/proc/loadavg').read().split()[:3]})")


if __name__ == "__main__":
    main()
