"""One line per finished job on the terminal (restyle/snakemake_output.py), on a tiny workflow."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_runs import REPO, without_slurm

pytestmark = pytest.mark.slow  # real Snakemake runs

SNAKEFILE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from restyle.snakemake_output import one_line_per_job

one_line_per_job(workflow)


rule all:
    input:
        expand("out/{{i}}.txt", i=range(3)),


rule make:
    output:
        temp("tmp/{{i}}.txt"),
        "out/{{i}}.txt",
    log:
        "logs/make/{{i}}.log",
    shell:
        "echo {{wildcards.i}} > {{output[0]}} && cp {{output[0]}} {{output[1]}} 2> {{log}}"


rule broken:
    output:
        "out/broken.txt",
    log:
        "logs/broken.log",
    shell:
        "echo 'the reason it failed' > {{log}}; exit 3"
"""


def snakemake(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    (workdir / "Snakefile").write_text(SNAKEFILE)
    environment = without_slurm({k: v for k, v in os.environ.items() if k != "RESTYLE_JOB_BLOCKS"})
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                          env={**environment, **env}, capture_output=True, text=True, timeout=300)


def job_blocks(text: str) -> list[str]:
    return re.findall(r"^\s*(?:local)?rule (\w+):$", text, flags=re.M)


def test_one_line_per_finished_job_errors_in_full_and_the_job_blocks_on_disk(tmp_path):
    # Each Snakemake start costs seconds: one run covers the jobs that succeed and the one
    # that fails.
    result = snakemake(tmp_path, "--keep-going", "--show-failed-logs", "all", "out/broken.txt")
    assert result.returncode != 0
    terminal = result.stdout + result.stderr
    done = re.findall(r"^\[\d\d:\d\d:\d\d\] (\d) of 5 steps \(\d+%\) done: (.*) in \d+ s$", terminal,
                      flags=re.M)
    assert [n for n, _ in done] == ["1", "2", "3", "4"]
    assert sorted(what for _, what in done) == ["all", "make (i=0)", "make (i=1)", "make (i=2)"]
    assert job_blocks(terminal) == []
    for chatter in ("Select jobs to execute", "Finished jobid", "Removing temporary output", "SNAKEMAKE"):
        assert chatter not in terminal
    assert "Job stats:" in terminal
    # The failed job's report is Snakemake's own: rule, log path, and the log (--show-failed-logs).
    assert "Error in rule broken:" in terminal
    assert "log: logs/broken.log (check log file(s) for error details)" in terminal
    assert "the reason it failed" in terminal
    (log,) = (tmp_path / ".snakemake" / "log").glob("*.snakemake.log")
    assert sorted(job_blocks(log.read_text())) == ["all", "broken", "make", "make", "make"]


def test_dry_runs_and_the_opt_out_keep_snakemakes_job_blocks(tmp_path):
    dry = snakemake(tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr
    assert sorted(job_blocks(dry.stdout + dry.stderr)) == ["all", "make", "make", "make"]
    full = snakemake(tmp_path, RESTYLE_JOB_BLOCKS="1")
    assert full.returncode == 0, full.stderr
    assert sorted(job_blocks(full.stdout + full.stderr)) == ["all", "make", "make", "make"]
