"""The workflow on a real SLURM cluster through ``--profile profiles/slurm``.

Uses a running SLURM (``sinfo`` answers) or starts a one-node one with
shared/slurm/start-local-slurm.sh (root; installs Debian's slurm-wlm and MariaDB on first use)
and stops the daemons it started when the module's tests are done.  Skipped, with the reason,
only where neither is possible.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import pytest

from workflow_runs import REPO, announced_jobs, snakemake, write_config

pytestmark = pytest.mark.slow  # whole workflow runs on a real SLURM

START_SCRIPT_CANDIDATES = [
    os.environ.get("RESTYLE_SLURM_START", ""),
    str(REPO.parent / "shared" / "slurm" / "start-local-slurm.sh"),
    "/work/shared/slurm/start-local-slurm.sh",
]
# The profile as users run it, with the status polled every second instead of every 30 s
# (a test cluster answers at once), sized to this machine, and no account (the test
# cluster's user has a default one).
SLURM = ("--profile", str(REPO / "profiles" / "slurm"), "--cores", "2", "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1")
TARGET = "results/clip/restyled.mp4"
# Snakemake's job blocks (rule, wildcards) instead of one line per finished job, for
# announced_jobs (restyle/snakemake_output.py).  The failing-job test keeps the terminal
# output users see: the error report is the same in both.
JOB_BLOCKS = {**os.environ, "RESTYLE_JOB_BLOCKS": "1"}


def slurm_answers() -> bool:
    try:
        nodes = subprocess.run(["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=30)
        accounting = subprocess.run(["sacct", "-n", "-X", "--starttime", "now-1hour"],
                                    capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = nodes.stdout.split()
    return (nodes.returncode == 0 and accounting.returncode == 0 and "up" in states
            and any(s.startswith(("idle", "mix", "alloc")) for s in states))


# Where start-local-slurm.sh records "pid starttime" of each daemon it started.
DAEMON_PIDS = Path("/run/local-slurm/pids")


def _start_time(pid: int) -> str | None:
    """Start time of a live (not zombie) process, as /proc/PID/stat field 22 has it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def running_recorded_daemons() -> dict[str, str]:
    """Daemon name -> its "pid starttime" record, for the recorded daemons still running."""
    running = {}
    for record in sorted(DAEMON_PIDS.glob("*.pid")):
        try:
            pid, starttime = record.read_text().split()[:2]
            alive = _start_time(int(pid)) == starttime
        except (OSError, ValueError):
            continue
        if alive:
            running[record.stem] = f"{pid} {starttime}"
    return running


def stop_what_we_started(start_script: Path, before: dict[str, str]) -> None:
    """Stop the daemons start-local-slurm.sh started for these tests, and only those."""
    started = {name: record for name, record in running_recorded_daemons().items()
               if before.get(name) != record}
    if not started:
        return
    if not before:  # every daemon it records is ours: its stop script (which cancels jobs first)
        stop = start_script.with_name("stop-local-slurm.sh")
        done = subprocess.run(["bash", str(stop)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{stop} failed, SLURM daemons may be left running: "
                               f"{done.stdout}{done.stderr}")
        return
    for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):  # the stop script's order
        if name not in started:
            continue
        pid, starttime = started[name].split()
        pid = int(pid)
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _start_time(pid) == starttime and time.monotonic() < deadline:
                time.sleep(0.1)
            if _start_time(pid) == starttime:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        (DAEMON_PIDS / f"{name}.pid").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A SLURM that answers: the one already running (left alone), or one started here and
    stopped again after this module's tests (only the daemons started here)."""
    if slurm_answers():
        yield
        return
    script = next((Path(c) for c in START_SCRIPT_CANDIDATES if c and Path(c).is_file()), None)
    if script is None:
        pytest.skip("SLURM cannot start here: sinfo/sacct do not answer and start-local-slurm.sh "
                    "was not found (set RESTYLE_SLURM_START to its path)")
    if os.geteuid() != 0:
        pytest.skip(f"SLURM cannot start here: {script} must run as root")
    before = running_recorded_daemons()
    try:
        started = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
        if started.returncode != 0 or not slurm_answers():
            last = (started.stdout + started.stderr).strip().splitlines()[-3:]
            pytest.skip(f"SLURM cannot start here: {script} failed: {' | '.join(last)}")
        yield
    finally:
        stop_what_we_started(script, before)


def submissions(output: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


@pytest.fixture(scope="module")
def clusters_run(slurm_cluster, tmp_path_factory, clip, rendered):
    """The same clip and config rendered locally (the shared render) and through SLURM."""
    cluster = tmp_path_factory.mktemp("slurm") / "cluster"
    cluster.mkdir()
    write_config(cluster, clip)
    result = snakemake(cluster, *SLURM, TARGET, env=JOB_BLOCKS, on_cluster=True)
    return rendered, cluster, result.stdout + result.stderr


@pytest.fixture
def own_clusters_run(clusters_run, tmp_path):
    """Copies of ``clusters_run``'s two workdirs for one test to change, with the same output:
    its renders are shared by this module's tests and never changed (rendering again through
    SLURM costs minutes, copying a fraction of a second)."""
    local, cluster, output = clusters_run
    copies = tmp_path / "local", tmp_path / "cluster"
    for workdir, copy in zip((local, cluster), copies):
        shutil.copytree(workdir, copy, symlinks=True)
    return (*copies, output)


def test_slurm_render_has_the_local_bytes_in_few_submissions(clusters_run):
    local, cluster, output = clusters_run
    assert (cluster / TARGET).read_bytes() == (local / TARGET).read_bytes()
    plan = json.loads((cluster / "results" / "clip" / "keyframes.json").read_text())
    jobs = announced_jobs(output)
    assert len([j for j in jobs if j[0] == "synthesize_gap"]) == len(plan["gaps"])
    # extract, scenes, plan, encode, one group job per scene (its gaps, fewer than
    # cluster.gaps_per_job, with their keyframes), and alone a keyframe no gap uses (the
    # clip's last frame, right after the one before it).
    alone = [k for k in plan["keyframes"] if not any(k in (g["start"], g["end"]) for g in plan["gaps"])]
    assert len(plan["scenes"]) == 2 and alone == [29]
    assert len(submissions(output)) == 4 + len(plan["scenes"]) + len(alone)
    # Per gap: flow, synthesis, blend and measurement (all inside the gap's group job).
    assert len(jobs) == 4 + len(plan["keyframes"]) + 4 * len(plan["gaps"]) > 25


def test_slurm_repaint_resubmits_only_that_keyframes_jobs(own_clusters_run):
    local, cluster, _ = own_clusters_run
    styled = cv2.imread(str(cluster / "results" / "clip" / "styled_keyframes" / "00006.png"))
    for workdir in (local, cluster):
        (workdir / "painted" / "clip").mkdir(parents=True)
        cv2.imwrite(str(workdir / "painted" / "clip" / "00006.png"), 255 - styled)
    result = snakemake(cluster, *SLURM, TARGET, env=JOB_BLOCKS, on_cluster=True)
    output = result.stdout + result.stderr
    gaps = ["00000-00006", "00006-00012"]
    expected = {(rule, f"video=clip, gap={gap}") for gap in gaps
                for rule in ("compute_flow", "synthesize_gap", "blend_gap", "measure_gap")}
    expected |= {("stylize_keyframe", "video=clip, frame=00006"), ("encode_video", "video=clip")}
    assert announced_jobs(output) == expected
    assert len(submissions(output)) == 2  # the keyframe with its two gaps, the encode
    snakemake(local, TARGET)
    assert (cluster / TARGET).read_bytes() == (local / TARGET).read_bytes()


def test_slurm_failing_job_is_reported_with_its_log(own_clusters_run):
    _, cluster, _ = own_clusters_run
    # A frame damaged on disk after extraction: the flows of its gap cannot be computed.
    (cluster / "results" / "clip" / "frames" / "00002.png").write_bytes(b"not a png")
    flow = cluster / "results" / "clip" / "flow" / "00000-00006"
    assert not flow.exists()  # temp: removed after the render
    # No retry: the profile's one retry would fail the same way, 30 s later.
    result = snakemake(cluster, *SLURM, "--retries", "0", "results/clip/flow/00000-00006", check=False,
                       on_cluster=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # A group of one job is submitted as that job.
    assert "Error in rule compute_flow" in output or "Error in group gaps-clip-0" in output
    assert "log: logs/clip/compute_flow/00000-00006.log" in output
    log = (cluster / "logs" / "clip" / "compute_flow" / "00000-00006.log").read_text()
    assert "00002.png: cannot read this image" in log
    (job_id,) = submissions(output)
    states = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert states == ["FAILED"]
    assert not flow.exists()
