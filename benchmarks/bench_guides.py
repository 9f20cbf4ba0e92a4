"""Benchmark guide hole filling (push-pull vs TELEA inpainting), DIS flow and propagation.

Run from the repository root:  python benchmarks/bench_guides.py [--repeats 7] [--telea-repeats 3]

1. Hole filling at 512x512 on a real positional guide: restyle.guides.coordinate_image
   warped by the DIS (medium) flow from demo frame 23 back to frame 20, with the holes
   given by restyle.flow.occlusion_mask (forward-backward check).
   * ours: restyle.guides.fill_holes (push-pull) on the float32 (H, W, 2) map, as the
     workflow runs it; also on the uint8 image the baseline gets, for the same input;
   * baseline: cv2.inpaint(..., 30, cv2.INPAINT_TELEA), the reference pipeline's hot
     spot, on the guide encoded the reference's way: a uint8 colour image, row -> red,
     column -> green (each scaled to 0..255), warped by the same flow.
2. restyle.flow.compute_flow per DIS preset at 512x512 and 1280x720 (one direction), with
   OpenCV's Farneback (the usual CPU default, common parameters) as the in-run baseline;
   both at OpenCV's default thread count and at 1 thread (how the workflow's flow jobs run).
3. restyle.propagate.propagate_frame at 512x512 (sample the styled keyframe + error map),
   against a plain restyle.flow.warp of the styled keyframe as the in-run baseline.

Every speed figure is a median over repeats (wall, with process CPU time in brackets),
and ratios are against a baseline measured in the same run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from common import load_frames, machine, timed  # noqa: E402

from restyle.flow import compute_flow, occlusion_mask, warp  # noqa: E402
from restyle.guides import coordinate_image, fill_holes  # noqa: E402
from restyle.propagate import propagate_frame  # noqa: E402
from restyle.stylize import make_stylizer  # noqa: E402

KEY, TARGET = 20, 23  # inside shot 1 (frames 0-43): camera pan + zoom, a cutout moving over it
PRESETS = ("ultrafast", "fast", "medium")


def interleaved(fns: dict[str, object], repeats: dict[str, int]) -> dict[str, tuple[float, float, object]]:
    """Median (wall, CPU) of each function, calls interleaved so all see the same load."""
    samples = {name: [] for name in fns}
    results = {}
    for i in range(max(repeats.values())):
        for name, fn in fns.items():
            if i < repeats[name]:
                wall, cpu, results[name] = timed(fn)
                samples[name].append((wall, cpu))
    return {name: (*np.median(samples[name], axis=0), results[name]) for name in fns}


def fmt(wall: float, cpu: float) -> str:
    unit, scale = ("s", 1.0) if wall >= 1 else ("ms", 1e3)
    digits = 2 if unit == "s" else (1 if wall * scale < 100 else 0)
    return f"{wall * scale:.{digits}f} {unit} ({cpu * scale:.{digits}f})"


def reference_positional_guide(height: int, width: int) -> np.ndarray:
    """The reference pipeline's positional guide: uint8 colour image, row -> R, column -> G."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.rint(rows * 255.0 / (height - 1))
    image[..., 1] = np.rint(cols * 255.0 / (width - 1))
    return image


def bench_holes(frames, repeats: int, telea_repeats: int) -> None:
    size = (512, 512)
    key = cv2.resize(frames[KEY], size, interpolation=cv2.INTER_CUBIC)
    target = cv2.resize(frames[TARGET], size, interpolation=cv2.INTER_CUBIC)
    to_key = compute_flow(target, key, "medium")    # target -> keyframe
    from_key = compute_flow(key, target, "medium")  # keyframe -> target
    holes = occlusion_mask(to_key, from_key)
    h, w = holes.shape

    ours_map = warp(coordinate_image(h, w), to_key)              # float32 (H, W, 2)
    ref_image = warp(reference_positional_guide(h, w), to_key)  # uint8 (H, W, 3)
    mask_u8 = holes.astype(np.uint8) * 255

    fill_holes(ours_map, holes)  # warm-up
    cv2.inpaint(ref_image, mask_u8, 30, cv2.INPAINT_TELEA)
    r = interleaved(
        {"telea": lambda: cv2.inpaint(ref_image, mask_u8, 30, cv2.INPAINT_TELEA),
         "ours_float": lambda: fill_holes(ours_map, holes),
         "ours_uint8": lambda: fill_holes(ref_image, holes)},
        {"telea": telea_repeats, "ours_float": repeats, "ours_uint8": repeats})

    # How different are the fills?  Decode TELEA's colours back to pixel coordinates.
    telea = r["telea"][2].astype(np.float32)
    telea_xy = np.dstack([telea[..., 1] * (w - 1) / 255.0, telea[..., 0] * (h - 1) / 255.0])
    gap = np.abs(telea_xy - r["ours_float"][2])[holes]

    print(f"## 1. Hole filling, positional guide at {w}x{h} (frame {TARGET} -> {KEY}, DIS medium)\n")
    print(f"holes: {holes.mean() * 100:.1f}% of pixels ({int(holes.sum())}); wall (CPU) medians, "
          f"{repeats} runs of ours, {telea_repeats} of TELEA, interleaved\n")
    print("| method | input | time | vs TELEA (wall / CPU) |")
    print("|---|---|---|---|")
    tw, tc, _ = r["telea"]
    print(f"| cv2.inpaint TELEA r=30 (baseline) | uint8 RGB, row->R col->G | {fmt(tw, tc)} | 1x |")
    for name, label in (("ours_float", "float32 (x, y) map"), ("ours_uint8", "same uint8 image as TELEA")):
        ow, oc, _ = r[name]
        print(f"| restyle.guides.fill_holes (push-pull) | {label} | {fmt(ow, oc)} | "
              f"{tw / ow:.0f}x / {tc / oc:.0f}x faster |")
    print(f"\nfilled positions, push-pull vs TELEA (decoded, 8-bit = {(w - 1) / 255:.1f} px steps): "
          f"mean abs diff {gap.mean():.2f} px, 95th percentile {np.percentile(gap, 95):.2f} px\n")


def bench_flow(frames, repeats: int) -> None:
    print(f"## 2. Optical flow, one direction (frame {KEY} -> {TARGET}), median of {repeats}\n")
    default_threads = cv2.getNumThreads()
    print("| size | cv2 threads | Farneback (baseline) | DIS ultrafast | DIS fast | DIS medium | "
          "speed-up vs Farneback (ultrafast / fast / medium) |")
    print("|---|---|---|---|---|---|---|")
    for size in ((512, 512), (1280, 720)):
        a = cv2.resize(frames[KEY], size, interpolation=cv2.INTER_CUBIC)
        b = cv2.resize(frames[TARGET], size, interpolation=cv2.INTER_CUBIC)
        for threads in (default_threads, 1):
            cv2.setNumThreads(threads)
            fns = {"farneback": lambda: cv2.calcOpticalFlowFarneback(
                cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None,
                0.5, 3, 15, 3, 5, 1.2, 0)}
            for preset in PRESETS:
                fns[preset] = (lambda p: lambda: compute_flow(a, b, p))(preset)
            for fn in fns.values():
                fn()  # warm-up
            r = interleaved(fns, {name: repeats for name in fns})
            fw = r["farneback"][0]
            cells = " | ".join(fmt(*r[p][:2]) for p in PRESETS)
            ratios = " / ".join(f"{fw / r[p][0]:.1f}x" for p in PRESETS)
            print(f"| {size[0]}x{size[1]} | {threads} | {fmt(*r['farneback'][:2])} | {cells} | {ratios} |")
    cv2.setNumThreads(default_threads)
    print()


def bench_propagate(frames, repeats: int) -> None:
    size = (512, 512)
    key = cv2.resize(frames[KEY], size, interpolation=cv2.INTER_CUBIC)
    target = cv2.resize(frames[TARGET], size, interpolation=cv2.INTER_CUBIC)
    styled = make_stylizer("builtin", look="watercolor")(key, KEY)
    flow = compute_flow(target, key, "medium")
    position = coordinate_image(512, 512) + flow
    r = interleaved({"warp": lambda: warp(styled, flow),
                     "propagate": lambda: propagate_frame(styled, key, target, position)},
                    {"warp": repeats, "propagate": repeats})
    ww, wc, _ = r["warp"]
    pw, pc, _ = r["propagate"]
    print(f"## 3. Propagation of one frame at 512x512, median of {repeats}\n")
    print("| step | time | relative |")
    print("|---|---|---|")
    print(f"| restyle.flow.warp of the styled keyframe (baseline: bare bilinear warp) | {fmt(ww, wc)} | 1x |")
    print(f"| restyle.propagate.propagate_frame (styled + per-pixel error map) | {fmt(pw, pc)} | "
          f"{pw / ww:.1f}x the bare warp |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repeats of the fast functions (median)")
    parser.add_argument("--telea-repeats", type=int, default=3, help="repeats of cv2.inpaint TELEA")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    frames = load_frames((KEY, TARGET))
    bench_holes(frames, args.repeats, args.telea_repeats)
    bench_flow(frames, args.repeats)
    bench_propagate(frames, args.repeats)


if __name__ == "__main__":
    main()
