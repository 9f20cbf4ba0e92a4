"""Propagation methods compared on one gap of real footage: speed and quality.

For a 10-frame gap of the demo's first shot (frames 20..30, camera pan + zoom with a cutout
moving over it), resized to each benchmark size, both passes of the gap are propagated with

* ``patch``: guided patch synthesis (restyle.propagate.propagate_by_patches, the default),
* ``warp``: flow warping through the positional guide (restyle.propagate.propagate_frame),

then blended (restyle.blend.blend_passes), and compared with stylizing every frame on its own
with the same deterministic stylizer (``per-frame``):

* seconds per frame per pass for synthesis, and per frame for the blend;
* on the in-between frames: PSNR against the per-frame stylization, sharpness ratio (mean
  luma gradient against the per-frame stylization, restyle.metrics.sharpness_ratio), and
  E_warp (Lai et al. 2018, arXiv:1808.00449; restyle.metrics.warping_error) of the whole
  gap, with the input's own E_warp as the floor.

Usage: python benchmarks/bench_propagation.py [--sizes 512x512 960x540] [--look watercolor]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from common import GRAD_WEIGHT, PATCH_SETTINGS, load_frames, machine, timed  # noqa: E402
from restyle.blend import blend_passes  # noqa: E402
from restyle.flow import compute_flow, occlusion_mask  # noqa: E402
from restyle.guides import edge_guide, positional_guides  # noqa: E402
from restyle.metrics import psnr, sharpness, sharpness_ratio, warping_error  # noqa: E402
from restyle.propagate import ChainStep, propagate_by_patches, propagate_frame  # noqa: E402
from restyle.stylize import make_stylizer  # noqa: E402

START, END = 20, 30


def chain_inputs(frames, forward):
    """Per in-between frame, in propagation order: flows to the previous frame and occlusions."""
    order = list(range(START, END + 1)) if forward else list(range(END, START - 1, -1))
    steps = []
    for previous, t in zip(order, order[1:-1]):
        to_previous = compute_flow(frames[t], frames[previous], "medium")
        to_current = compute_flow(frames[previous], frames[t], "medium")
        steps.append((t, to_previous, occlusion_mask(to_previous, to_current)))
    positions = list(positional_guides((s[1] for s in steps), (s[2] for s in steps)))
    return order[0], [(t, flow, occ, pos) for (t, flow, occ), pos in zip(steps, positions)]


def run_pass(method, frames, styled, forward, threads, output="subpixel", iters=(2, 1)):
    source, steps = chain_inputs(frames, forward)
    began = time.perf_counter()
    if method == "warp":
        out = [propagate_frame(styled[source], frames[source], frames[t], pos) for t, _, _, pos in steps]
    else:
        chain = (ChainStep(frames[t], edge_guide(frames[t]), pos, flow, occ) for t, flow, occ, pos in steps)
        settings = dict(PATCH_SETTINGS, output=output, search_vote_iters=iters[0], patchmatch_iters=iters[1])
        out = list(propagate_by_patches(styled[source], frames[source], edge_guide(frames[source]), chain,
                                        **settings, threads=threads))
    per_frame = (time.perf_counter() - began) / len(steps)
    return {t: result for (t, *_), result in zip(steps, out)}, per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "960x540"])
    parser.add_argument("--look", default="watercolor")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", default="2x1", help="search-vote x PatchMatch iterations per frame")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    look = make_stylizer("builtin", look=args.look)
    source_frames = load_frames(range(START, END + 1))
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        frames = {t: cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for t, f in source_frames.items()}
        per_frame_look = {t: look(f, t) for t, f in frames.items()}
        styled = {START: per_frame_look[START], END: per_frame_look[END]}
        inbetween = list(range(START + 1, END))
        video_in = [frames[t] for t in range(START, END + 1)]
        floor = warping_error(video_in, video_in)
        reference = [per_frame_look[t] for t in range(START, END + 1)]
        rows.append((size, "per-frame", float("nan"), float("nan"), float("inf"), 1.0,
                     warping_error(reference, video_in), floor))
        for method in ("warp", "patch (vote)", "patch (nearest)", "patch (subpixel)"):
            kind, output = (method.split(" (")[0], method.split("(")[-1].rstrip(")")) if "(" in method else (method, None)
            iters = tuple(int(v) for v in args.iters.split("x"))
            forward, fwd_s = run_pass(kind, frames, styled, True, args.threads, output, iters)
            backward, bwd_s = run_pass(kind, frames, styled, False, args.threads, output, iters)
            blended, blend_times = {}, []
            for t in inbetween:
                wall, _, (frame, _) = timed(lambda: blend_passes(
                    forward[t][0], backward[t][0], forward[t][1], backward[t][1], t - START, END - t,
                    grad_weight=GRAD_WEIGHT))
                blended[t] = frame
                blend_times.append(wall)
            output = [styled[START], *(blended[t] for t in inbetween), styled[END]]
            rows.append((size, method, (fwd_s + bwd_s) / 2, float(np.median(blend_times)),
                         float(np.mean([psnr(blended[t], per_frame_look[t]) for t in inbetween])),
                         sharpness_ratio([sharpness(blended[t]) for t in inbetween],
                                         [sharpness(per_frame_look[t]) for t in inbetween]),
                         warping_error(output, video_in), floor))
    print("| size | method | synthesis s/frame/pass | blend ms/frame | PSNR vs per-frame (dB) | sharpness ratio | E_warp | input E_warp |")
    print("|---|---|---|---|---|---|---|---|")
    for size, method, synth, blend_s, quality, sharp, e_warp, floor in rows:
        synth_text = "-" if np.isnan(synth) else f"{synth:.3f}"
        blend_text = "-" if np.isnan(blend_s) else f"{blend_s * 1000:.1f}"
        print(f"| {size} | {method} | {synth_text} | {blend_text} | {quality:.2f} | {sharp:.3f} | {e_warp:.2e} | {floor:.2e} |")


if __name__ == "__main__":
    main()
