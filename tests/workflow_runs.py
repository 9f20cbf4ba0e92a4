"""Running the real workflow from the tests: its config, its Snakemake command, what it says.

Plain helpers, importable from every test file (tests/conftest.py puts tests/ on sys.path);
the fixtures built on them live in tests/conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# The standard workflow clip (tests/conftest.py's ``clip``): two scenes, the cut at CUT, and
# with keyframes every INTERVAL frames the gaps 00000-00006, 00006-00012, ...
N_FRAMES, CUT, INTERVAL = 30, 16, 6


def write_config(workdir: Path, video: Path, **overrides) -> Path:
    """``workdir``/config.yaml for ``video`` (as video "clip"), with ``overrides`` merged in
    one level deep.  Painted keyframes are read from the default ``painted/{video}``, relative
    to the working directory, so a copied workdir reads its own."""
    config = {
        "videos": {"clip": str(video)},
        "keyframes": {"interval": INTERVAL},
        "scenes": {"min_scene_len": 4},
        # Ink outlines re-decided on every frame flicker visibly: a clear baseline to beat.
        "stylizer": {"backend": "builtin", "look": "cartoon"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def copy_with_painted_keyframe(workdir: Path, copy: Path, frame: int, like: int) -> Path:
    """A copy of the finished render ``workdir`` (its files' times and Snakemake's records
    too) at ``copy``, with keyframe ``frame`` painted: its file is the styled keyframe
    ``like``, so it differs from what the render styled there."""
    shutil.copytree(workdir, copy, symlinks=True)
    painted = copy / "painted" / "clip"
    painted.mkdir(parents=True)
    shutil.copy(copy / "results" / "clip" / "styled_keyframes" / f"{like:05d}.png", painted / f"{frame}.png")
    return copy


def without_slurm(env: dict | None = None) -> dict:
    """``env`` (default: this process's) for a Snakemake that uses no cluster: a ``scontrol``
    that fails at once (tests/no_slurm/scontrol) comes first on PATH, sparing the ~10 s the
    SLURM plugin waits at each start where SLURM is installed but not running."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(__file__).parent / "no_slurm"), env.get("PATH", "")])
    return env


def snakemake(workdir: Path, *args: str, check: bool = True, on_cluster: bool = False,
              **popen) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with its config.yaml, as README's command does."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    if not on_cluster:
        popen["env"] = without_slurm(popen.get("env"))
    result = subprocess.run(command, capture_output=True, text=True, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def announced_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job Snakemake's output announces, grouped or not."""
    jobs, current = set(), None
    for line in output.splitlines():
        rule = re.match(r"\s*(?:local)?(?:rule|checkpoint) (\w+):", line)
        if rule:
            current = [rule.group(1), ""]
            jobs.add(tuple(current))
            continue
        wildcards = re.match(r"\s*wildcards: (.*)", line)
        if wildcards and current:
            jobs.discard(tuple(current))
            current[1] = wildcards.group(1)
            jobs.add(tuple(current))
    return jobs


def planned_jobs(workdir: Path) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would execute."""
    return announced_jobs(snakemake(workdir, "-n").stdout)


def one_line_error(workdir: Path) -> str:
    """The one ``restyle: error:`` line a dry run in ``workdir`` stops with (and no traceback)."""
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("restyle: error:")]
    assert len(errors) == 1, lines
    assert "Traceback" not in result.stderr
    return errors[0]
