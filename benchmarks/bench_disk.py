"""Disk used by a 1920x1080 render, per folder, scaled to 1,000 frames.

Makes a 1080p clip from the demo's first frames (upscaled and cropped to 16:9; the demo's
cut stays in), then renders it twice with the workflow:

1. ``keep_intermediate: true``: ``du`` of every folder of results/<video>/ afterwards;
2. the default (flows, guides and passes are temp()): the folder's size sampled every 0.2 s
   during the run, so the peak is what a user actually needs free.

Usage: python benchmarks/bench_disk.py [--frames 48] [--cores 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import yaml

from common import DEMO, REPO, machine
from restyle.video import read_frames

SIZE = (1920, 1080)


def make_1080p_clip(path: Path, n_frames: int) -> None:
    width, height = SIZE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "16", "threads": "2"}
        for i, frame in enumerate(read_frames(DEMO)):
            if i == n_frames:
                break
            scale = width / frame.shape[1]
            big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            top = (big.shape[0] - height) // 2
            for packet in stream.encode(av.VideoFrame.from_ndarray(big[top:top + height], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def render(workdir: Path, cores: int, keep: bool) -> tuple[float, int]:
    """(wall s, peak bytes under results/) of one render."""
    (workdir / "config.yaml").write_text(yaml.safe_dump({
        "videos": {"clip": str(workdir.parent / "clip.mp4")}, "keep_intermediate": keep,
        "output": {"compare": False}, "measure": {"per_frame_reference": False}}))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "-q"]
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], du(workdir / "results"))
            except FileNotFoundError:  # a temp file vanished while it was being counted
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    began = time.perf_counter()
    sampler.start()
    try:
        subprocess.run(command, check=True, capture_output=True)
    finally:
        done.set()
        sampler.join()
    return time.perf_counter() - began, max(peak[0], du(workdir / "results"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--default-only", action="store_true", help="skip the keep_intermediate run")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        make_1080p_clip(base / "clip.mp4", args.frames)
        kept, default = base / "kept", base / "default"
        kept.mkdir()
        default.mkdir()
        per_k = 1000 / args.frames
        if not args.default_only:
            wall, _ = render(kept, args.cores, keep=True)
            out = kept / "results" / "clip"
            print(f"{args.frames} frames at {SIZE[0]}x{SIZE[1]}, keep_intermediate: true, {wall:.0f} s on {args.cores} cores")
            print(f"{'folder':<18} {'MB':>9} {'GB per 1,000 frames':>20}")
            total = 0
            for folder in sorted(p for p in out.iterdir() if p.is_dir()):
                size = du(folder)
                total += size
                print(f"{folder.name:<18} {size / 1e6:>9.1f} {size * per_k / 1e9:>20.2f}")
            print(f"{'all folders':<18} {total / 1e6:>9.1f} {total * per_k / 1e9:>20.2f}")
        wall, peak = render(default, args.cores, keep=False)
        final = du(default / "results")
        print(f"default (temp intermediates), {wall:.0f} s: peak {peak / 1e6:.1f} MB, "
              f"after the run {final / 1e6:.1f} MB ({final * per_k / 1e9:.2f} GB per 1,000 frames)")


if __name__ == "__main__":
    main()
