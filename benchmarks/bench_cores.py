"""Wall time of the whole demo render with 1 and with 2 cores (how it scales).

Each run renders the bundled demo from nothing, with the default config and profile, into its
own fresh folder; runs alternate between core counts so both see the same machine load.

Usage: python benchmarks/bench_cores.py [--cores 1 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine


def render(workdir: Path, cores: int) -> float:
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    (workdir / "demo").mkdir()
    shutil.copy(REPO / "demo" / "demo.mp4", workdir / "demo" / "demo.mp4")
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "-q"]
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    walls: dict[int, list[float]] = {c: [] for c in args.cores}
    for _ in range(args.repeats):
        for cores in args.cores:
            with tempfile.TemporaryDirectory() as tmp:
                walls[cores].append(render(Path(tmp), cores))
                print(f"  --cores {cores}: {walls[cores][-1]:.1f} s", flush=True)
    base = statistics.median(walls[args.cores[0]])
    print(f"{'cores':>5} {'median wall s':>14} {'speed-up':>9}   runs")
    for cores in args.cores:
        median = statistics.median(walls[cores])
        print(f"{cores:>5} {median:>14.1f} {base / median:>9.2f}x   {', '.join(f'{w:.1f}' for w in walls[cores])}")


if __name__ == "__main__":
    main()
