"""The real workflow, run by Snakemake on tiny generated clips."""

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

from clips import make_undecodable_clip
from workflow_runs import CUT, N_FRAMES, REPO, one_line_error, planned_jobs, snakemake, write_config

from restyle.video import probe_video, read_frames


@pytest.fixture
def own_render(rendered, tmp_path):
    """A finished render for one test to change: a copy of ``rendered`` (its files' times,
    Snakemake's records and its config, whose paths are all relative to the workdir or
    outside it), far cheaper than rendering again."""
    workdir = tmp_path / "run"
    shutil.copytree(rendered, workdir, symlinks=True)
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("change, new_jobs", [
    ({"deflicker": {"method": "patch_blend"}}, {"deflicker_chunk", "measure_chunk"}),
    ({"propagation": {"method": "network"}}, {"train_network", "network_chunk", "measure_chunk"}),
])
def test_a_finished_render_is_redone_from_chunks_when_the_config_asks_for_them(own_render, clip, change, new_jobs):
    write_config(own_render, clip, **change)
    rules = {rule for rule, _ in planned_jobs(own_render)}
    assert new_jobs | {"encode_video", "measure"} <= rules


@pytest.mark.slow
def test_renders_a_restyled_mp4_with_the_source_audio_and_frame_rate(rendered, clip):
    out = rendered / "results" / "clip"
    probe, source = probe_video(out / "restyled.mp4"), probe_video(clip)
    assert probe["n_frames"] == N_FRAMES
    assert probe["fps_fraction"] == source["fps_fraction"]
    assert probe["has_audio"] and abs(probe["duration_s"] - source["duration_s"]) < 0.1
    assert (probe["width"], probe["height"]) == (96, 64)
    compare = probe_video(out / "compare.mp4")
    assert (compare["width"], compare["n_frames"]) == (192, N_FRAMES)


@pytest.mark.slow
def test_plan_cuts_at_the_scene_change_and_ends_at_the_last_frame(rendered):
    plan = json.loads((rendered / "results" / "clip" / "keyframes.json").read_text())
    assert plan["scenes"] == [[0, CUT], [CUT, N_FRAMES]]
    assert plan["keyframes"][-1] == N_FRAMES - 1
    assert all(not (g["start"] < CUT <= g["end"]) for g in plan["gaps"])


@pytest.mark.slow
def test_keyframes_of_the_output_are_the_stylized_keyframes(rendered):
    out = rendered / "results" / "clip"
    decoded = list(read_frames(out / "restyled.mp4"))
    styled = cv2.cvtColor(cv2.imread(str(out / "styled_keyframes" / "00006.png")), cv2.COLOR_BGR2RGB)
    error = np.abs(decoded[6].astype(int) - styled).mean()
    assert error < 6  # only H.264 loss


@pytest.mark.slow
def test_metrics_report_stability_fidelity_and_stage_timings(rendered):
    metrics = json.loads((rendered / "results" / "clip" / "metrics.json").read_text())
    e_warp = metrics["e_warp"]
    # Propagation removes the flicker that stylizing every frame on its own creates.
    assert e_warp["output"] < 0.5 * e_warp["per_frame_stylization"]
    assert e_warp["input"] > 0
    # No pair straddling the cut is scored.
    assert [row["frame"] for row in metrics["e_warp_per_frame"]] == [t for t in range(1, N_FRAMES) if t != CUT]
    assert metrics["fidelity"]["frames_compared"] == N_FRAMES - len(
        json.loads((rendered / "results" / "clip" / "keyframes.json").read_text())["keyframes"])
    for stage in ("extract_frames", "detect_scenes", "compute_flow", "stylize_keyframe",
                  "synthesize_gap", "blend_gap", "encode_video"):
        assert metrics["timings"][stage]["jobs"] >= 1


@pytest.mark.slow
def test_intermediates_are_removed_after_use(rendered):
    out = rendered / "results" / "clip"
    assert not (out / "flow").exists() and not (out / "guides").exists() and not (out / "passes").exists()


@pytest.mark.slow
def test_nothing_to_do_on_a_second_run(rendered):
    assert "Nothing to be done" in snakemake(rendered, "-n").stdout


@pytest.mark.slow
def test_repainting_a_keyframe_reruns_only_its_two_gaps_and_the_assembly(own_render):
    out = own_render / "results" / "clip"
    plan = json.loads((out / "keyframes.json").read_text())
    gaps = [g["name"] for g in plan["gaps"] if 6 in (g["start"], g["end"])]
    assert gaps == ["00000-00006", "00006-00012"]
    painted = 255 - cv2.imread(str(out / "styled_keyframes" / "00006.png"))
    (own_render / "painted" / "clip").mkdir(parents=True)
    cv2.imwrite(str(own_render / "painted" / "clip" / "0006.png"), painted)

    jobs = planned_jobs(own_render)
    per_gap = {(rule, f"video=clip, gap={gap}") for gap in gaps
               for rule in ("compute_flow", "synthesize_gap", "blend_gap", "measure_gap")}
    expected = per_gap | {("stylize_keyframe", "video=clip, frame=00006"),
                          ("encode_video", "video=clip"), ("encode_compare", "video=clip"),
                          ("measure", "video=clip"), ("all", "")}
    assert jobs == expected

    snakemake(own_render)
    np.testing.assert_array_equal(cv2.imread(str(out / "styled_keyframes" / "00006.png")), painted)


def test_missing_video_is_a_one_line_error(tmp_path):
    write_config(tmp_path, tmp_path / "nope.mp4")
    message = one_line_error(tmp_path)
    assert "nope.mp4" in message and "videos.clip" in message


def test_unreadable_video_is_a_one_line_error(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    write_config(tmp_path, bogus)
    assert "notes.mp4" in one_line_error(tmp_path)


def test_video_without_decodable_frames_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.mkv"
    make_undecodable_clip(empty)
    write_config(tmp_path, empty)
    message = one_line_error(tmp_path)
    assert "empty.mkv" in message and "frame" in message


@pytest.mark.parametrize("bad, expected", [
    ({"keyframes": {"interval": 0}}, "keyframes.interval: 0 is less than the minimum of 1"),
    ({"flow": {"preset": "slowest"}}, "flow.preset"),
    ({"stylizer": {"backend": "vangogh"}}, "unknown stylizer 'vangogh'"),
    ({"stylizer": {"backend": "builtin", "look": "sepia"}}, "unknown built-in look 'sepia'"),
    ({"width": "wide"}, "width"),
])
def test_invalid_config_values_are_one_line_errors(tmp_path, clip, bad, expected):
    write_config(tmp_path, clip, **bad)
    message = one_line_error(tmp_path)
    assert expected in message and "config.yaml" in message


def test_painted_keyframe_of_the_wrong_size_or_unreadable_is_a_one_line_error(tmp_path, clip):
    write_config(tmp_path, clip)
    painted = tmp_path / "painted" / "clip"
    painted.mkdir(parents=True)
    cv2.imwrite(str(painted / "00006.png"), np.zeros((10, 10, 3), np.uint8))
    message = one_line_error(tmp_path)
    assert "00006.png" in message and "96x64" in message and "resize" in message
    (painted / "00006.png").write_bytes(b"garbage")
    message = one_line_error(tmp_path)
    assert "00006.png" in message and "cannot read" in message


@pytest.mark.slow
def test_painted_frame_off_the_keyframes_is_reported(own_render):
    painted = own_render / "painted" / "clip"
    painted.mkdir(parents=True)
    cv2.imwrite(str(painted / "00007.png"), np.zeros((64, 96, 3), np.uint8))
    message = one_line_error(own_render)
    assert "00007.png" in message and "keyframes.extra" in message


@pytest.mark.slow
def test_several_videos_in_one_config_get_their_own_results(tmp_path, clip):
    write_config(tmp_path, clip)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["videos"]["second"] = str(clip)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tmp_path)
    assert {("extract_frames", "video=clip"), ("extract_frames", "video=second")} <= jobs


@pytest.mark.slow
def test_the_flow_warp_preview_method_renders_too(tmp_path, clip):
    write_config(tmp_path, clip, propagation={"method": "warp"})
    snakemake(tmp_path)
    out = tmp_path / "results" / "clip"
    assert probe_video(out / "restyled.mp4")["n_frames"] == N_FRAMES
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["e_warp"]["output"] < 0.5 * metrics["e_warp"]["per_frame_stylization"]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["local", "slurm", "cluster-generic"])
def test_every_bundled_profile_plans_the_workflow(rendered, profile):
    result = snakemake(rendered, "-n", "--profile", str(REPO / "profiles" / profile))
    assert "Nothing to be done" in result.stdout + result.stderr
