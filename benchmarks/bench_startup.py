"""Start-up cost of a synthesize_gap job vs the work it does, in a fresh process.

Each Snakemake job is a new Python process, so the synthesis engine's imports and the
loading of its compiled (disk-cached) kernels are paid once per gap.  This measures, in a
fresh process with a warm cache: (1) importing the engine and its first call on a tiny
image, (2) propagating one pass through a 10-frame gap of the demo at 512x512, and reports
(1) as a share of (1) + (2).

Usage: python benchmarks/bench_startup.py [--size 512x512]   (run it twice: the first run
fills the cache if it is cold)
"""

from __future__ import annotations

import argparse
import time

began = time.perf_counter()
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from common import PATCH_SETTINGS, load_frames  # noqa: E402
from restyle.flow import compute_flow, occlusion_mask  # noqa: E402
from restyle.guides import edge_guide, positional_guides  # noqa: E402
from restyle.stylize import make_stylizer  # noqa: E402

START, END = 20, 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x512")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = {t: cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC)
              for t, f in load_frames(range(START, END + 1)).items()}
    styled = make_stylizer("builtin", look="watercolor")(frames[START], START)
    steps_in = []
    for t in range(START + 1, END):
        back, fwd = compute_flow(frames[t], frames[t - 1]), compute_flow(frames[t - 1], frames[t])
        steps_in.append((t, back, occlusion_mask(back, fwd)))
    positions = list(positional_guides((s[1] for s in steps_in), (s[2] for s in steps_in)))
    prepared = time.perf_counter()

    from restyle.propagate import ChainStep, propagate_by_patches
    from restyle.synthesis import synthesize
    tiny = np.zeros((16, 16, 3), np.uint8)
    synthesize(tiny, [tiny], [tiny], [1.0], initial_nnf=np.zeros((16, 16, 2), np.int32))
    started = time.perf_counter()

    steps = [ChainStep(frames[t], edge_guide(frames[t]), pos, flow, occ)
             for (t, flow, occ), pos in zip(steps_in, positions)]
    list(propagate_by_patches(styled, frames[START], edge_guide(frames[START]), steps, **PATCH_SETTINGS, threads=2))
    done = time.perf_counter()

    startup, work = started - prepared, done - started
    print(f"process start to data ready (imports, decoding, flows): {prepared - began:.2f} s")
    print(f"engine import + kernel load + first call: {startup:.2f} s")
    print(f"one pass through a {END - START}-frame gap at {width}x{height}: {work:.2f} s "
          f"({work / len(steps):.3f} s per frame)")
    print(f"engine start-up share of the pass: {startup / (startup + work):.1%}")


if __name__ == "__main__":
    main()
