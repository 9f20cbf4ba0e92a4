"""Summaries of Snakemake ``benchmark:`` files: time spent per stage."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def stage_timings(benchmark_dir: str | Path) -> dict[str, dict[str, float]]:
    """``{stage: {"jobs", "wall_s", "cpu_s", "max_rss_mb"}}`` from a folder of benchmark TSVs.

    The stage is the file's stem for top-level files (``extract_frames.tsv``) and the
    sub-folder's name for per-job files (``compute_flow/00000-00010.tsv``).
    """
    benchmark_dir = Path(benchmark_dir)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
    for path in sorted(benchmark_dir.rglob("*.tsv")):
        stage = path.stem if path.parent == benchmark_dir else path.parent.name
        with open(path) as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                entry = totals[stage]
                entry["jobs"] += 1
                entry["wall_s"] += _number(row.get("s"))
                entry["cpu_s"] += _number(row.get("cpu_time"))
                entry["max_rss_mb"] = max(entry["max_rss_mb"], _number(row.get("max_rss")))
    return {stage: {k: round(v, 3) for k, v in entry.items()} for stage, entry in sorted(totals.items())}


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0
