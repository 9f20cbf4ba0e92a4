"""The workflow as the Snakemake community checks it: Snakemake's linter and snakefmt."""

import subprocess
import sys

import pytest
import yaml

from workflow_runs import REPO, without_slurm

RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]


def test_snakemakes_linter_finds_nothing(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["videos"] = {name: str(REPO / path) for name, path in config["videos"].items()}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile"),
                             "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True, env=without_slurm(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "good condition" in result.stdout + result.stderr


def test_rule_files_are_formatted_with_snakefmt():
    pytest.importorskip("snakefmt")
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", *map(str, RULE_FILES)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, f"run `snakefmt Snakefile workflow/rules/*.smk`:\n{result.stdout}{result.stderr}"
