"""Benchmark the guided patch-based synthesis engine (restyle.synthesis) at 512x512.

Run from the repository root:  python benchmarks/bench_synthesis_engine.py [--repeats 5] [--scratch-repeats 3]

Input: demo frames 20 (keyframe) and 23 (target), resized to 512x512; style = the builtin
watercolor look of frame 20.  Guides and weights are Rerender's four (Yang et al. 2023,
arXiv:2306.07954): colour (the frames, 3 ch) 6, edge (restyle.guides.edge_guide, 3 ch) 0.5,
positional (coordinate image scaled to 0..255, 2 ch; the target's carried along the DIS
medium flow 23 -> 20, holes filled by push-pull) 2, temporal (3 ch: the style, and the style
warped to frame 23 as the stand-in for the previous output) 0.5.

Cases, calls interleaved so they see the same load, median wall time (process CPU time in
brackets; both cores count):

1. per frame of a video: ``initial_nnf`` = the keyframe's identity field carried to frame
   23 along the flow (restyle.propagate.advect_positions, rounded), finest level only,
   search_vote_iters=2, patchmatch_iters=2 -- with the default random-search radius for a
   warm start (max(W, H)/8) and with EbSynth's full radius (max(W, H));
2. from scratch: full pyramid (6 levels), EbSynth's default iterations 6 x 4.

Quality columns: mean of Synthesis.error (weighted patch SSD per pixel and unit weight) and
the mean absolute difference (0-255) to the watercolor look applied to frame 23 directly
(the measure EbSynth was scored with, 3.1-7.1 on real clips with 5-frame jumps), next to
the flow-warped style as a baseline.

Then: the same bytes with 1 and 2 threads, and the cost of a cold process with a warm
kernel cache: ``import restyle.synthesis`` plus a first call on a 32x24 image, in a fresh
interpreter (median of 3).

Reference (EbSynth's CPU backend, measured on the same machine kind): it needs
~36-48 s wall (~72 CPU-s) for one 512x512 pass with these four guides at Rerender's 12/6
iterations, and 7.7 s wall (12.3 CPU-s) with one colour guide at the default 6/4.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import cv2
import numba
import numpy as np

from common import REPO, load_frames, machine, timed  # noqa: E402

from restyle.flow import compute_flow, occlusion_mask, warp  # noqa: E402
from restyle.guides import coordinate_image, edge_guide, fill_holes  # noqa: E402
from restyle.stylize import make_stylizer  # noqa: E402
from restyle.propagate import advect_positions  # noqa: E402
from restyle.synthesis import synthesize  # noqa: E402

KEY, TARGET = 20, 23
SIZE = 512
WEIGHTS = [6.0, 0.5, 2.0, 0.5]  # colour, edge, positional, temporal

COLD_START = """
import time
t0 = time.perf_counter()
import numpy as np
import restyle.synthesis as s
t1 = time.perf_counter()
img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
s.synthesize(img, [img], [img], [1.0])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def setup():
    frames = load_frames((KEY, TARGET))
    key = cv2.resize(frames[KEY], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    target = cv2.resize(frames[TARGET], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    stylize = make_stylizer("builtin", look="watercolor")
    style, truth = stylize(key, KEY), stylize(target, TARGET)
    to_key = compute_flow(target, key, "medium")
    holes = occlusion_mask(to_key, compute_flow(key, target, "medium"))
    scale = np.float32(255.0 / (SIZE - 1))
    coords = coordinate_image(SIZE, SIZE)
    source = [key, edge_guide(key), coords * scale, style]
    warped_style = warp(style, to_key)
    target_guides = [target, edge_guide(target), fill_holes(warp(coords, to_key), holes) * scale, warped_style]
    # The keyframe's own matches (the identity) moved to frame 23, rounded to pixels.
    start = np.clip(np.rint(advect_positions(coords, to_key)), 0, SIZE - 1).astype(np.int32)
    return style, truth, source, target_guides, start, warped_style, holes


def fmt(wall: float, cpu: float) -> str:
    return f"{wall:.3f} s ({cpu:.2f})" if wall < 10 else f"{wall:.1f} s ({cpu:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the per-frame cases (median)")
    parser.add_argument("--scratch-repeats", type=int, default=3, help="repeats of the from-scratch case")
    args = parser.parse_args()
    style, truth, source, target, init, warped_style, holes = setup()

    def run(**kwargs):
        return synthesize(style, source, target, WEIGHTS, **kwargs)

    cases = {
        "warm start, 2x2 iterations, radius max/8 (default)":
            dict(initial_nnf=init, search_vote_iters=2, patchmatch_iters=2),
        "warm start, 2x2 iterations, radius max (EbSynth's)":
            dict(initial_nnf=init, search_vote_iters=2, patchmatch_iters=2, search_radius=SIZE),
        "from scratch, 6 levels, 6x4 iterations (EbSynth's defaults)": {},
    }
    repeats = {name: (args.scratch_repeats if not kw else args.repeats) for name, kw in cases.items()}
    for kwargs in cases.values():  # warm-up: kernels loaded, caches hot
        run(**kwargs)
    engine = f"numba {numba.__version__} ({numba.get_num_threads()} threads, {numba.threading_layer()} layer)"
    print(f"machine: {machine(engine)}\n")
    samples = {name: [] for name in cases}
    results = {}
    for i in range(max(repeats.values())):
        for name, kwargs in cases.items():
            if i < repeats[name]:
                wall, cpu, results[name] = timed(lambda kw=kwargs: run(**kw))
                samples[name].append((wall, cpu))

    print(f"## Synthesis of one {SIZE}x{SIZE} frame, 4 guides (14 channels with the style), frame {TARGET} "
          f"from keyframe {KEY}\n")
    print(f"median of {args.repeats} (warm start) / {args.scratch_repeats} (from scratch), interleaved; "
          f"wall (process CPU s)\n")
    print("| case | time | mean error | mean abs diff to the look on frame 23 (all / flow holes) |")
    print("|---|---|---|---|")
    for name in cases:
        wall, cpu = np.median(samples[name], axis=0)
        result = results[name]
        diff = np.abs(result.image.astype(np.float32) - truth).mean(-1)
        print(f"| {name} | {fmt(wall, cpu)} | {result.error.mean():.1f} | "
              f"{diff.mean():.2f} / {diff[holes].mean():.2f} |")
    diff = np.abs(warped_style.astype(np.float32) - truth).mean(-1)
    print(f"| baseline: the style warped along the flow (no synthesis) | - | - | "
          f"{diff.mean():.2f} / {diff[holes].mean():.2f} |")
    print(f"\nflow holes (occluded in frame {KEY}): {holes.mean() * 100:.1f}% of pixels\n")

    # Determinism: one and two threads, same bytes.
    warm = cases["warm start, 2x2 iterations, radius max/8 (default)"]
    one, two = run(**warm, threads=1), run(**warm, threads=2)
    same = all(getattr(one, f).tobytes() == getattr(two, f).tobytes() for f in ("image", "error", "nnf"))
    print(f"same bytes (image, error, nnf) with threads=1 and threads=2: {'yes' if same else 'NO'}\n")

    # Cold process, warm on-disk kernel cache.
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", COLD_START], cwd=REPO, capture_output=True, text=True, check=True)
        runs.append([float(v) for v in out.stdout.split()])
    imp, first = np.median(runs, axis=0)
    print(f"fresh process, warm kernel cache: import restyle.synthesis {imp:.2f} s + first call (32x24) "
          f"{first:.2f} s = {imp + first:.2f} s (median of 3)")


if __name__ == "__main__":
    main()
