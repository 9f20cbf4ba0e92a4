"""What every benchmark script shares: demo frames, timing, and a machine description."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from restyle.preflight import schema_defaults  # noqa: E402
from restyle.video import read_frames  # noqa: E402

DEMO = REPO / "demo" / "demo.mp4"
# The workflow's settings (the config schema's defaults), so a benchmark measures what runs.
DEFAULTS = schema_defaults(REPO)
PATCH_SETTINGS = {k: v for k, v in DEFAULTS["propagation"].items() if k != "method"}
GRAD_WEIGHT = DEFAULTS["blend"]["grad_weight"]


def load_frames(indices) -> dict[int, np.ndarray]:
    """The demo's frames at ``indices`` (decoding stops after the last one)."""
    wanted = set(indices)
    frames = {}
    for i, frame in enumerate(read_frames(DEMO)):
        if i in wanted:
            frames[i] = frame
        if len(frames) == len(wanted):
            break
    return frames


def timed(fn) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def machine(*extra: str) -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"nproc {os.cpu_count()}", f"CPU {cpu}", f"Python {platform.python_version()}",
             f"numpy {np.__version__}", f"OpenCV {cv2.__version__}", f"cv2 threads {cv2.getNumThreads()}", *extra]
    return ", ".join(parts)


def render_demo(workdir: Path, overrides: dict) -> dict:
    """The demo through the workflow in ``workdir`` (the default config, ``overrides`` on top,
    2 cores): its metrics.json, with the run's wall time as ``wall_s``."""
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "demo").mkdir()
    shutil.copy(REPO / "demo" / "demo.mp4", workdir / "demo" / "demo.mp4")
    (workdir / "overrides.yaml").write_text(json.dumps(overrides))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), str(workdir / "overrides.yaml"), "--cores", "2", "-q"]
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    metrics = json.loads((workdir / "results" / "demo" / "metrics.json").read_text())
    metrics["wall_s"] = time.perf_counter() - began
    return metrics
