"""Fixtures shared by the test modules.

Plain helpers are modules of their own, importable from every test file: tests/clips.py
(synthetic clips) and tests/workflow_runs.py (running the workflow).
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clips import make_test_clip  # noqa: E402
from workflow_runs import CUT, N_FRAMES, snakemake, write_config  # noqa: E402


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """The standard workflow clip (read only): N_FRAMES frames, 96x64, 24 fps, a hard cut at
    CUT, AAC audio."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_test_clip(path, n_frames=N_FRAMES, size=(96, 64), cut_at=CUT, audio=True)
    return path


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, clip) -> Path:
    """A finished render of ``clip`` with the tests' standard config (workflow_runs.write_config),
    shared by every module that needs one: read it, never change it (copy it to change it)."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir, clip)
    snakemake(workdir)
    return workdir


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs) mounted at tmp_path / "results"."""
    target = tmp_path / "results"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'}); needs root")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)
