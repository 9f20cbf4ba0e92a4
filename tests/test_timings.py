"""restyle.timings: Snakemake's benchmark files summed per stage, for metrics.json."""

from restyle.timings import stage_timings


def test_stage_timings_sum_jobs_per_stage(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "compute_flow").mkdir()
    (tmp_path / "compute_flow" / "a.tsv").write_text(header + "1.5\t0:00:01\t100\t1\t1\t1\t0\t0\t50\t1.0\n")
    (tmp_path / "compute_flow" / "b.tsv").write_text(header + "2.5\t0:00:02\t300\t1\t1\t1\t0\t0\t50\t2.0\n")
    (tmp_path / "encode_video.tsv").write_text(header + "0.5\t0:00:00\t50\t1\t1\t1\t0\t0\t50\t0.25\n")
    timings = stage_timings(tmp_path)
    assert timings["compute_flow"] == {"jobs": 2, "wall_s": 4.0, "cpu_s": 3.0, "max_rss_mb": 300.0}
    assert timings["encode_video"]["jobs"] == 1
