"""Deflickering: quality on the synthetic-flicker protocol, on per-frame stylization and on
restyled output, and speed of both blend forms (restyle.deflicker).

Parts (all by default, or pick with ``--parts``):

* ``synthetic``: Lei et al.'s protocol (``restyle.metrics.synthetic_flicker``, strength 1,
  W = 1, 3, 10) on clips made from photographs (benchmarks/clips.py): PSNR against the clean
  video and E_warp relative to the clean video's own, for the flickering input, a temporal
  median of +-2 frames (no motion compensation) and blind restyle.
* ``perframe``: a look applied to every frame on its own, made to flicker (``watercolor``
  with a random colour cast per frame, like per-frame diffusion; ``strokes``, whose texture
  swims), deflickered with the input as the guide (table form, W = 15): E_warp relative to the
  input's own, sharpness ratio and PSNR against the per-frame frames; for ``watercolor`` also
  the look without its cast, per frame and deflickered (how much of what is left is the
  look's own flicker rather than the cast's), and on the photograph clips the look's steady
  floor: the same shot filmed over photographs painted with the look first
  (``make_clip(paint=)``), a video of the look with no flicker at all, whose E_warp is what
  the look's own contrast makes of the motion.
* ``restyled``: the demo through the workflow (snakemake, default config) with
  ``deflicker.method`` none and patch_blend, for the default look and for ``strokes``, and
  plain flow warping (``propagation.method: warp``) for ``strokes``; metrics.json's numbers.
* ``forms``: the table and the exact form on the same per-frame stylized clip: how closely
  they agree, and their cost.
* ``speed``: seconds per output frame of a deflicker job (a chunk of C frames with W frames of
  context each side) at 512x512 and 1920x1080, both forms, W = 15, and how it grows with W at
  512x512; each case in a fresh process, whose peak memory is reported.

Needs the ``demo`` extra (scikit-image).  Takes about 20 minutes on 2 cores.

Usage: python benchmarks/bench_deflicker.py [--parts synthetic perframe restyled speed]
"""

from __future__ import annotations

import argparse
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

from restyle import io, preflight
from restyle.deflicker import (BlindSettings, RemapSettings, deflicker_blind, frames_held, iter_patch_blend,
                               patch_blend, shot_colour_maps)
from restyle.flow import consecutive_flows
from restyle.metrics import flicker_field, psnr, sharpness, sharpness_ratio, synthetic_flicker, warping_errors
from restyle.stylize import LOOKS, BuiltinStylizer

SETTINGS = RemapSettings(**preflight.remap_settings(DEFAULTS))
BLIND = BlindSettings(**DEFAULTS["deflicker"]["blind"])
WINDOW = DEFAULTS["deflicker"]["per_frame_window"]
SYNTHETIC_CLIPS = {"demo": 44, "astronaut": 96, "coffee_cat": 96, "rocket_tilt": 96}


def mean_psnr(frames, references) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(frames, references)]))


def e_warp(videos: dict[str, list[np.ndarray]], flows) -> dict[str, float]:
    """E_warp of each video through the same flows (of the clean/input video)."""
    names = list(videos)
    per_pair = warping_errors(({n: videos[n][t] for n in names} for t in range(len(videos[names[0]]))), flows)
    return {n: float(np.mean(v)) for n, v in per_pair.items()}


def temporal_median(frames: list[np.ndarray], radius: int = 2) -> list[np.ndarray]:
    stack = np.asarray(frames)
    return [np.median(stack[max(0, t - radius):t + radius + 1], axis=0).astype(np.uint8) for t in range(len(frames))]


def blind(frames: list[np.ndarray]) -> list[np.ndarray]:
    maps = shot_colour_maps(frames, blind=BLIND, flow_preset=SETTINGS.flow_preset)
    return deflicker_blind(frames, maps, blind=BLIND, settings=SETTINGS)


def mean_flicker_bound(clean: list[np.ndarray], window: int) -> list[np.ndarray]:
    """The clean video through the average of the synthetic flicker over its frames: what a
    blind method that removes every change of colour and brightness, and nothing else, gives.
    Without a guide the shot's true colour is unknowable beyond that average, so its PSNR is
    what PSNR against the clean video can reach (high when many windows average out, low when
    a shot has few)."""
    fields = [flicker_field(clean[0].shape[:2], t // window, 1.0, 0) for t in range(len(clean))]
    gain, offset = np.mean([f[0] for f in fields], axis=0), np.mean([f[1] for f in fields], axis=0)
    return [np.clip(np.rint(c * gain + offset), 0, 255).astype(np.uint8) for c in clean]


def part_synthetic() -> None:
    print("\n## Synthetic flicker (strength 1): PSNR vs clean (dB) / E_warp relative to the clean video's own\n")
    print("| clip | W | flickering input | temporal median +-2 | blind restyle | blind s/frame | bound: clean through the mean flicker (dB) |")
    print("|---|---|---|---|---|---|---|")
    for name, n_frames in SYNTHETIC_CLIPS.items():
        clean = list(make_clip(name, n_frames=n_frames))
        flows = list(consecutive_flows(clean, DEFAULTS["flow"]["preset"]))
        for window in (1, 3, 10):
            flickering = list(synthetic_flicker(clean, window, seed=0))
            began = time.perf_counter()
            out = blind(flickering)
            seconds = (time.perf_counter() - began) / len(clean)
            videos = {"clean": clean, "input": flickering, "median": temporal_median(flickering), "blind": out}
            errors = e_warp(videos, flows)
            cells = [f"{mean_psnr(videos[k], clean):.2f} / {errors[k] / errors['clean']:.2f}x"
                     for k in ("input", "median", "blind")]
            bound = mean_psnr(mean_flicker_bound(clean, window), clean)
            print(f"| {name} ({len(clean)} frames) | {window} | " + " | ".join(cells) + f" | {seconds:.2f} | {bound:.2f} |",
                  flush=True)


def jittered(look: str, frames: list[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(per-frame stylized, the same made to flicker): ``watercolor`` gets a random colour cast
    per frame; ``strokes`` flickers by itself (its texture swims)."""
    stylizer = BuiltinStylizer(look)
    styled = [stylizer(f, t) for t, f in enumerate(frames)]
    if look == "strokes":
        return styled, styled
    rng = np.random.default_rng(seed)
    cast = [np.clip(s * rng.uniform(0.85, 1.15, 3) + rng.uniform(-12, 12, 3), 0, 255).astype(np.uint8) for s in styled]
    return styled, cast


def part_perframe() -> None:
    print(f"\n## Per-frame stylization deflickered with the input as guide (table form, W = {WINDOW})\n")
    print("| clip | look | E_warp / input's: per-frame | deflickered | sharpness vs per-frame | PSNR vs per-frame (dB) "
          "| vs un-jittered | s/frame | un-jittered look: per-frame / deflickered | steady floor: painted world |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("demo", "astronaut", "coffee_cat"):
        frames = list(make_clip(name, n_frames=SYNTHETIC_CLIPS[name]))
        flows = list(consecutive_flows(frames, DEFAULTS["flow"]["preset"]))
        for look in ("watercolor", "strokes"):
            clean_style, processed = jittered(look, frames)
            began = time.perf_counter()
            out = patch_blend(processed, frames, window=WINDOW, form="table", settings=SETTINGS)
            seconds = (time.perf_counter() - began) / len(frames)
            videos = {"input": frames, "perframe": processed, "out": out}
            if clean_style is not processed:  # how much of what is left is the look's own flicker
                videos |= {"look": clean_style,
                           "look_out": patch_blend(clean_style, frames, window=WINDOW, form="table", settings=SETTINGS)}
            if clean_style is not processed and name != "demo":  # the look on the world, not on frames
                videos["painted"] = list(make_clip(name, n_frames=SYNTHETIC_CLIPS[name], paint=LOOKS[look]))
            raw = e_warp(videos, flows)
            errors = {k: v / raw["input"] for k, v in raw.items()}
            sharp = sharpness_ratio([sharpness(o) for o in out], [sharpness(p) for p in processed])
            own = f"{errors['look']:.2f}x / {errors['look_out']:.2f}x" if "look" in errors else "(no cast)"
            floor = f"{errors['painted']:.2f}x" if "painted" in errors else "-"
            print(f"| {name} | {look} | {errors['perframe']:.2f}x | {errors['out']:.2f}x | {sharp:.3f} "
                  f"| {mean_psnr(out, processed):.2f} | {mean_psnr(out, clean_style):.2f} | {seconds:.2f} | {own} "
                  f"| {floor} |", flush=True)


def part_forms() -> None:
    print(f"\n## The two forms on the same input (demo shot 1, watercolor with a per-frame colour cast, W = {WINDOW})\n")
    print("| form | E_warp / input's | s/frame | PSNR vs exact form (dB) |")
    print("|---|---|---|---|")
    frames = list(make_clip("demo"))
    flows = list(consecutive_flows(frames, DEFAULTS["flow"]["preset"]))
    _, processed = jittered("watercolor", frames)
    outputs = {}
    for form in ("exact", "table"):
        began = time.perf_counter()
        outputs[form] = patch_blend(processed, frames, window=WINDOW, form=form, settings=SETTINGS)
        seconds = (time.perf_counter() - began) / len(frames)
        errors = e_warp({"input": frames, "out": outputs[form]}, flows)
        print(f"| {form} | {errors['out'] / errors['input']:.2f}x | {seconds:.2f} | {mean_psnr(outputs[form], outputs['exact']):.2f} |",
              flush=True)


RESTYLED_CASES = [(DEFAULTS["stylizer"]["look"], "patch", None), (DEFAULTS["stylizer"]["look"], "patch", 2),
                  (DEFAULTS["stylizer"]["look"], "patch", 15), (DEFAULTS["stylizer"]["look"], "per_frame", 15),
                  ("strokes", "warp", None), ("strokes", "patch", None), ("strokes", "patch", 2),
                  ("strokes", "patch", 15), ("strokes", "per_frame", 15)]


def part_restyled(method_filter: list[str] | None = None) -> None:
    print("\n## The restyled demo through the workflow, with and without the deflicker stage\n")
    print("| look | propagation | deflicker (window) | E_warp output | input's own | per-frame stylization | PSNR vs per-frame (dB) | sharpness | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case_look, method, window in [c for c in RESTYLED_CASES if method_filter is None or c[1] in method_filter]:
        deflicker = {"method": "none"} if window is None else {"method": "patch_blend", "window": window}
        with tempfile.TemporaryDirectory() as tmp:
            m = render_demo(Path(tmp), {"stylizer": {"look": case_look}, "propagation": {"method": method},
                                   "deflicker": deflicker})
        e, f = m["e_warp"], m["fidelity"]
        label = "none" if window is None else f"patch_blend ({window})"
        nan = float("nan")
        print(f"| {case_look} | {method} | {label} | {e['output']:.3e} | {e['input']:.3e} "
              f"| {e.get('per_frame_stylization', nan):.3e} | {f.get('psnr_db_vs_per_frame_stylization', nan):.2f} "
              f"| {f.get('sharpness_ratio_vs_per_frame_stylization', nan):.3f} | {m['wall_s']:.0f} |", flush=True)


SPEED_CASES = [(512, 512, "table", 15, 40), (512, 512, "table", 15, 120), (512, 512, "exact", 15, 8), (1920, 1080, "table", 15, 16),
               (1920, 1080, "exact", 15, 2), (512, 512, "table", 3, 40), (512, 512, "table", 7, 40),
               (512, 512, "table", 31, 40), (512, 512, "exact", 3, 8), (512, 512, "exact", 7, 8)]


def speed_case(clip: str, form: str, window: int, chunk: int) -> dict:
    """One deflicker job: ``chunk`` frames with ``window`` frames of context each side, read
    from ``clip`` (a folder of processed/ and guide/ PNGs) as the deflicker_chunk job reads them."""
    n = chunk + 2 * window
    processed, frames = (io.LazyFrames([Path(clip) / kind / io.frame_name(t) for t in range(n)])
                         for kind in ("processed", "guide"))
    processed.cache = frames.cache = frames_held(window, form, processed[0].shape, n)
    began, cpu = time.perf_counter(), time.process_time()
    for _ in iter_patch_blend(processed, frames, window=window, form=form, settings=SETTINGS,
                              targets=range(window, window + chunk)):
        pass  # the job writes each frame as it comes
    return {"s_per_frame": (time.perf_counter() - began) / chunk, "cpu_per_frame": (time.process_time() - cpu) / chunk,
            "peak_mb": peak_memory_mb()}


def peak_memory_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike getrusage's maxrss it does not
    carry over the parent's peak across fork and exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_speed() -> None:
    print("\n## Speed of one deflicker job (C frames, W frames of context each side), 2 threads\n")
    print("| size | form | W | C | s/frame (wall) | CPU-s/frame | peak memory of the job MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height, form, window, chunk in SPEED_CASES:
            clip = Path(tmp) / f"{width}x{height}_{chunk + 2 * window}"
            if not clip.exists():
                frames = list(make_clip("astronaut", width, height, n_frames=chunk + 2 * window))
                _, processed = jittered("watercolor", frames)
                for kind, images in (("processed", processed), ("guide", frames)):
                    (clip / kind).mkdir(parents=True)
                    for t, image in enumerate(images):
                        io.write_image(clip / kind / io.frame_name(t), image)
            out = subprocess.run([sys.executable, __file__, "--speed-case", str(clip), form, str(window), str(chunk)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {width}x{height} | {form} | {window} | {chunk} | {r['s_per_frame']:.2f} | {r['cpu_per_frame']:.2f} "
                  f"| {r['peak_mb']:.0f} |", flush=True)


PARTS = {"synthetic": part_synthetic, "perframe": part_perframe, "forms": part_forms, "restyled": part_restyled,
         "speed": part_speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--methods", nargs="+", help="restyled part: only these propagation methods")
    parser.add_argument("--speed-case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_case:
        clip, form, window, chunk = args.speed_case
        print(json.dumps(speed_case(clip, form, int(window), int(chunk))))
        return
    print(machine())
    began = time.perf_counter()
    for part in args.parts:
        if part == "restyled":
            part_restyled(args.methods)
        else:
            PARTS[part]()
    print(f"\n(all parts: {time.perf_counter() - began:.0f} s; load average now {open('/proc/loadavg').read().split()[:3]})")


if __name__ == "__main__":
    main()
