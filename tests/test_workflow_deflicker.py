"""The deflicker stage of the workflow: on the restyled output, per-frame stylization with a
guided deflicker, and deflicker_videos (guided and blind), run by Snakemake on tiny clips."""

import json

import numpy as np
import pytest

from clips import make_test_clip
from workflow_runs import (CUT, N_FRAMES, copy_with_painted_keyframe, one_line_error, planned_jobs, snakemake,
                           write_config)

from restyle.metrics import synthetic_flicker
from restyle.video import probe_video, read_frames, write_video

FLICKER_FRAMES = 12
# Small chunks and windows, so each scene has a few chunks and a repaint touches only some.
DEFLICKER = {"method": "patch_blend", "window": 1, "frames_per_job": 6}


def _metrics(workdir, name):
    return json.loads((workdir / "results" / name / "metrics.json").read_text())


@pytest.fixture(scope="module")
def deflickered_render(tmp_path_factory, clip):
    """The clip restyled (patch propagation) with the deflicker stage after the blends."""
    workdir = tmp_path_factory.mktemp("deflicker_run")
    write_config(workdir, clip, deflicker=DEFLICKER)
    snakemake(workdir)
    return workdir


@pytest.fixture(scope="module")
def flickering(tmp_path_factory, clip):
    """(flickering video, its clean guide): a small one-shot clip with audio, and the same with
    synthetic per-frame flicker and the clip's audio."""
    folder = tmp_path_factory.mktemp("flickering")
    guide = folder / "guide.mp4"
    make_test_clip(guide, n_frames=FLICKER_FRAMES, size=(64, 48), cut_at=None, audio=True)
    path = folder / "flickering.mp4"
    write_video(path, synthetic_flicker(read_frames(guide), window=1, strength=1.0, seed=3), fps=24,
                audio_source=guide)
    return path, guide


@pytest.fixture(scope="module")
def second_job(tmp_path_factory, clip, flickering):
    """One run of the other modes: the clip stylized per frame and deflickered, and a video
    deflickered guided and blind (deflicker_videos)."""
    video, guide = flickering
    workdir = tmp_path_factory.mktemp("deflicker_videos_run")
    write_config(workdir, clip, propagation={"method": "per_frame"},
                 deflicker={"per_frame_window": 1, "form": "exact", "frames_per_job": 16,
                            "blind": {"atlas_width": 48, "atlas_window": 3, "refine_window": 1}},
                 deflicker_videos={"guided": {"video": str(video), "guide": str(guide)},
                                   "blind": {"video": str(video)}})
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_deflicker_stage_makes_the_restyled_video_steadier(deflickered_render, clip):
    out = deflickered_render / "results" / "clip"
    probe = probe_video(out / "restyled.mp4")
    assert probe["n_frames"] == N_FRAMES and probe["has_audio"]
    assert probe_video(out / "compare.mp4")["n_frames"] == N_FRAMES
    metrics = _metrics(deflickered_render, "clip")
    assert metrics["e_warp"]["output"] < metrics["e_warp"]["before_deflicker"]
    assert [row["frame"] for row in metrics["e_warp_per_frame"]] == [t for t in range(1, N_FRAMES) if t != CUT]
    plan = json.loads((out / "keyframes.json").read_text())
    assert metrics["fidelity"]["frames_compared"] == N_FRAMES - len(plan["keyframes"])
    assert metrics["timings"]["deflicker_chunk"]["jobs"] == 6


@pytest.mark.slow
def test_a_repainted_keyframe_reruns_only_the_deflicker_chunks_that_read_its_gaps(deflickered_render, tmp_path):
    # Keyframe 28: its gap is 00022-00028 (28-29 are adjacent keyframes).
    workdir = copy_with_painted_keyframe(deflickered_render, tmp_path / "run", frame=28, like=16)
    jobs = planned_jobs(workdir)
    chunks = {wildcards for rule, wildcards in jobs if rule == "deflicker_chunk"}
    # Contexts (window 1): 00016-00021 reads 16-22 (keyframes 16 and 22, gap 00016-00022),
    # untouched; 00022-00027 reads 21-28, 00028-00029 reads 27-29.
    assert chunks == {f"video=clip, chunk={c}" for c in ("00022-00027", "00028-00029")}
    assert {r for r, _ in jobs if r in ("synthesize_gap", "blend_gap")} == {"synthesize_gap", "blend_gap"}
    assert {w for r, w in jobs if r == "blend_gap"} == {"video=clip, gap=00022-00028"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["guided", "blind"])
def test_deflicker_videos_keep_frame_count_rate_and_audio_and_reduce_flicker(second_job, flickering, name):
    out = second_job / "results" / name
    probe, source = probe_video(out / "deflickered.mp4"), probe_video(flickering[0])
    assert probe["n_frames"] == source["n_frames"] == FLICKER_FRAMES
    assert probe["fps_fraction"] == source["fps_fraction"]
    assert probe["has_audio"] and abs(probe["duration_s"] - source["duration_s"]) < 0.1
    assert probe_video(out / "compare.mp4")["width"] == 2 * probe["width"]
    metrics = _metrics(second_job, name)
    assert metrics["e_warp"]["output"] < metrics["e_warp"]["input"]
    assert metrics["fidelity"]["psnr_db_vs_input"] > 15
    assert 0 < metrics["fidelity"]["sharpness_ratio_vs_input"] <= 1.5
    assert (out / "atlas").is_dir() == (name == "blind")


@pytest.mark.slow
def test_per_frame_mode_stylizes_every_frame_and_deflickers_them(second_job):
    out = second_job / "results" / "clip"
    assert probe_video(out / "restyled.mp4")["n_frames"] == N_FRAMES
    assert not (out / "keyframes.json").exists() and not (out / "blended").exists()
    metrics = _metrics(second_job, "clip")
    assert metrics["e_warp"]["output"] < metrics["e_warp"]["per_frame_stylization"]
    assert metrics["fidelity"]["frames_compared"] == N_FRAMES


@pytest.mark.slow
def test_a_guide_of_another_length_or_size_is_a_one_line_error(tmp_path, clip, flickering):
    short = tmp_path / "short.mp4"
    make_test_clip(short, n_frames=FLICKER_FRAMES - 4, size=(64, 48), cut_at=None)
    small = tmp_path / "small.mp4"
    make_test_clip(small, n_frames=FLICKER_FRAMES, size=(32, 24), cut_at=None)
    for guide, problem in ((short, f"has {FLICKER_FRAMES - 4} frames"), (small, "is 32x24")):
        write_config(tmp_path, clip, deflicker_videos={"x": {"video": str(flickering[0]), "guide": str(guide)}})
        error = one_line_error(tmp_path)
        assert str(guide) in error and str(flickering[0]) in error and problem in error
        assert "remove the guide" in error


@pytest.mark.slow
def test_a_window_below_one_and_a_clashing_name_are_one_line_errors(tmp_path, clip):
    write_config(tmp_path, clip, deflicker={"window": 0})
    assert "deflicker.window: 0 is less than the minimum of 1" in one_line_error(tmp_path)
    write_config(tmp_path, clip, deflicker_videos={"clip": {"video": str(clip)}})
    assert "deflicker_videos.clip" in one_line_error(tmp_path)
