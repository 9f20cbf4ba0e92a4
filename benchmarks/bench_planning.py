"""How long Snakemake takes to plan the whole DAG of a long clip, and how many jobs it plans.

For each frame count: generate a clip (a panning texture with a hard cut every 600 frames,
small frames because planning does not look at pixels), run the real workflow up to the
plan_keyframes checkpoint (extract, scene detection, keyframe plan), then time
``snakemake -n`` -- parsing, validating, probing the video, resolving the checkpoint and
building every job -- which is what each later ``snakemake`` call pays before its first job.
Then once more through profiles/slurm, counting the submissions a cluster would get.

Usage: python benchmarks/bench_planning.py [--frames 1000 5000 15000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

from common import REPO, machine

SIZE = (160, 90)
SCENE_LEN = 600


def make_long_clip(path: Path, n_frames: int, size=SIZE, seed: int = 0) -> None:
    """A clip panning over a smooth texture, a new texture every SCENE_LEN frames."""
    width, height = size
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "threads": "1"}
        texture = None
        for i in range(n_frames):
            if i % SCENE_LEN == 0:
                noise = rng.random((height * 2, width * 4, 3)).astype(np.float32)
                texture = (cv2.GaussianBlur(noise, (0, 0), 3) * 255).astype(np.uint8)
            x = (i % SCENE_LEN) % (texture.shape[1] - width)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:height, x:x + width]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Jobs per rule from the 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def submissions(dry_run_output: str) -> list[str]:
    """Jobs a cluster executor would submit: group jobs, and jobs outside any group."""
    submitted = []
    for line in dry_run_output.splitlines():
        group = re.search(r"Group job (\w+)", line)
        if group:
            submitted.append(f"group {group.group(1)}")
            continue
        rule = re.match(r"(\s*)(?:local)?rule (\w+):", line)
        if rule and not rule.group(1) and rule.group(2) != "all":
            submitted.append(rule.group(2))
    return submitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 5000, 15000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print(f"{'frames':>7} {'prepare s':>10} {'plan s (median)':>16} {'jobs':>6} {'gaps':>5} "
          f"{'SLURM submissions':>18} {'plan s, SLURM profile':>22}")
    for n_frames in args.frames:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            clip = workdir / "long.mp4"
            make_long_clip(clip, n_frames)
            (workdir / "config.yaml").write_text(yaml.safe_dump({
                "videos": {"long": str(clip)}, "output": {"compare": False},
                "measure": {"per_frame_reference": False}}))
            began = time.perf_counter()
            snakemake(workdir, "--cores", "2", "--until", "plan_keyframes")
            prepare = time.perf_counter() - began
            times = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                out = snakemake(workdir, "-n", "--cores", "16").stdout
                times.append(time.perf_counter() - began)
            counts = job_counts(out)
            # What a cluster would see: the same plan through profiles/slurm, whose
            # group-components batch gaps and keyframes into group jobs.
            began = time.perf_counter()
            cluster = snakemake(workdir, "-n", "--profile", str(REPO / "profiles" / "slurm")).stdout
            cluster_s = time.perf_counter() - began
            print(f"{n_frames:>7} {prepare:>10.1f} {statistics.median(times):>16.2f} "
                  f"{counts.get('total', 0):>6} {counts.get('blend_gap', 0):>5} "
                  f"{len(submissions(cluster)):>18} {cluster_s:>22.2f}"
                  f"   runs: {', '.join(f'{t:.2f}' for t in times)}", flush=True)


if __name__ == "__main__":
    main()
