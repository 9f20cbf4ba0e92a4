"""A run killed at any moment is finished by the same command, to the same bytes.

Each case freezes one process of a real run at an exact moment (tests/faults/sitecustomize.py:
right after a given file is written, or half-way through Snakemake deleting a temp() folder),
then kills the whole run with SIGKILL (or Ctrl-C), and reruns README's command -- with
``--unlock`` first only when Snakemake's message asks for it -- with no manual clean-up.  The
rerun is killed in turn at the next moment of its chain, so one run of the clip serves every
moment of a chain, and the state each kill leaves is also the start of the next.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clips import make_test_clip
from workflow_runs import REPO, snakemake, without_slurm, write_config

from restyle.io import directory_is_complete

FAULTS = Path(__file__).parent / "faults"
N_FRAMES, INTERVAL = 10, 4  # keyframes 0 4 8 9: gaps 00000-00004 and 00004-00008

# Chains of moments, each with (name, freeze spec relative to the run's results/clip/, signal).
# One run is killed at the first moment, its rerun (the same command) at the next, and so on;
# the last rerun must finish to the bytes of an uninterrupted run.  A moment's file is made
# only after (and because of) the one before it, so every rerun still has it ahead: the chain
# follows one gap through its stages, then through Snakemake's deletion of its temp() folders
# (passes go once the gap is blended, flows once it is measured too).
CHAINS = {
    "gap 00004-00008": [
        ("extracting frames", "write:.frames.*/00005.png:1", signal.SIGKILL),
        ("keyframe plan written", "write:keyframes.json:1", signal.SIGKILL),
        ("writing flows", "write:flow/.00004-00008.*/flow_f_00005.npy:1", signal.SIGKILL),
        ("writing guides", "write:guides/.00004-00008.*/bwd/pos_00006.npy:1", signal.SIGKILL),
        ("ctrl-c while writing a pass", "write:passes/.00004-00008.*/fwd/styled_00006.png:1", signal.SIGINT),
        ("deleting temp passes", "rmtree:passes/00004-00008:1", signal.SIGKILL),
        ("deleting temp flows", "rmtree:flow/00004-00008:1", signal.SIGKILL),
        ("restyled.mp4 written, job not yet done", "write:restyled.mp4:1", signal.SIGKILL),
    ],
    "gap 00000-00004": [
        ("styling a keyframe", "write:styled_keyframes/00004.png:1", signal.SIGKILL),
        ("writing a pass", "write:passes/.00000-00004.*/bwd/styled_00002.png:1", signal.SIGKILL),
        ("deleting temp guides", "rmtree:guides/00000-00004:1", signal.SIGKILL),
        ("writing blended frames", "write:blended/.00000-00004.*/00002.png:1", signal.SIGKILL),
        ("writing a gap's measurement", "write:measured/.00000-00004.*/measurement.json:1", signal.SIGKILL),
    ],
}


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults-clip") / "clip.mp4"
    make_test_clip(path, n_frames=N_FRAMES, size=(64, 48), cut_at=None, audio=True)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_clip):
    workdir = tmp_path_factory.mktemp("faults-reference")
    write_config(workdir, small_clip, keyframes={"interval": INTERVAL})
    snakemake(workdir)
    return workdir / "results" / "clip"


def kill_run(process: psutil.Process, sig: int) -> list[psutil.Process]:
    """Signal Snakemake and every process under it, as a terminal's Ctrl-C (the foreground
    process group) or the OOM killer would; return them all."""
    victims = [process, *process.children(recursive=True)]
    if sig == signal.SIGINT:
        os.killpg(process.pid, sig)
        return victims
    for victim in victims:
        try:
            victim.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return victims


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_until_frozen(workdir: Path, spec: str, sig: int) -> str | None:
    """Run README's command until one of its processes freezes at the moment ``spec``, then
    kill the whole run with ``sig``; or, where the run ends first, return what it printed."""
    flag = workdir / "frozen"
    flag.unlink(missing_ok=True)
    printed = workdir / "frozen-run.log"
    kind, rest = spec.split(":", 1)
    pattern, nth = rest.rsplit(":", 1)
    env = without_slurm(dict(os.environ,
                             PYTHONPATH=os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
                             RESTYLE_TEST_FREEZE=f"{kind}:{workdir / 'results' / 'clip' / pattern}:{nth}",
                             RESTYLE_TEST_FREEZE_FLAG=str(flag)))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "2"]
    # A terminal's foreground job takes Ctrl-C; a test runner started in the background (CI,
    # `cmd &` in a script) may hand down SIGINT ignored, which exec keeps: restore it.
    with printed.open("w") as output:
        popen = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    process = psutil.Process(popen.pid)
    deadline = time.monotonic() + 300
    while not flag.exists():
        if popen.poll() is not None:
            return f"exit {popen.returncode}:\n" + printed.read_text()[-3000:]
        if time.monotonic() > deadline:
            kill_run(process, signal.SIGKILL)
            pytest.fail(f"the run did not reach the moment {spec} in 300 s")
        time.sleep(0.01)
    victims = kill_run(process, sig)
    # Snakemake's terminal handler swallows a KeyboardInterrupt that lands while it writes a
    # line (snakemake/logging.py, `except (KeyboardInterrupt, SystemExit): pass`), so a
    # Ctrl-C can go unnoticed, and a user presses it again: so does this test, every 10 s.
    for _ in range(6):
        try:
            popen.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            if sig != signal.SIGINT:
                continue
            kill_run(process, sig)
    else:
        pytest.fail(f"snakemake did not stop on {signal.Signals(sig).name}")
    # Nothing of the killed run may keep writing while the rerun works.
    deadline = time.monotonic() + 30
    while (alive := [p for p in victims if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"processes outlived the killed run: {[p.pid for p in alive]}"
    return None


def unlocked_if_asked(workdir: Path, output: str) -> bool:
    """Run ``--unlock`` where a run's output asks for it, as a user would; say whether it did."""
    if "--unlock" not in output:
        return False
    snakemake(workdir, "--unlock")
    return True


def assert_killed_jobs_left_nothing_half_written(out: Path, moment: str) -> None:
    """What a killed job was writing is complete at its final path or not there at all; only
    Snakemake's own deletion of a temp() folder can leave one half there."""
    assert not (out / "metrics.json").exists()
    outputs = [*out.glob("frames"), *out.glob("blended/*"), *out.glob("passes/*"), *out.glob("flow/*")]
    for folder in outputs:
        if not folder.name.startswith("."):  # staging folders are cleared by the next writer
            assert directory_is_complete(folder) or moment.startswith("deleting"), (moment, folder)


@pytest.mark.slow
@pytest.mark.parametrize("chain", CHAINS.values(), ids=list(CHAINS))
def test_a_run_killed_at_any_moment_finishes_with_the_same_command(tmp_path, small_clip, uninterrupted, chain):
    write_config(tmp_path, small_clip, keyframes={"interval": INTERVAL})
    out = tmp_path / "results" / "clip"
    for moment, spec, sig in chain:
        ended = run_until_frozen(tmp_path, spec, sig)
        if ended is not None and unlocked_if_asked(tmp_path, ended):
            ended = run_until_frozen(tmp_path, spec, sig)
        assert ended is None, f"the rerun did not reach the moment '{moment}' ({spec}): {ended}"
        assert_killed_jobs_left_nothing_half_written(out, moment)

    rerun = snakemake(tmp_path, check=False)
    if rerun.returncode != 0 and unlocked_if_asked(tmp_path, rerun.stdout + rerun.stderr):
        rerun = snakemake(tmp_path, check=False)
    assert rerun.returncode == 0, f"rerun after '{moment}' failed:\n{rerun.stdout[-3000:]}\n{rerun.stderr[-3000:]}"
    for name in ("restyled.mp4", "compare.mp4"):
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    # Nothing half-done is left behind: no staging folders, no incomplete intermediates.
    assert not [p for p in out.rglob(".*") if p.name not in (".snakemake_timestamp", ".restyle-complete")]
    assert not [p for stage in ("flow", "guides", "passes") for p in out.glob(f"{stage}/*")]
    dry = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
