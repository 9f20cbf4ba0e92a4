"""The real workflow, run by Snakemake on tiny generated clips."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from clips import make_test_clip, make_undecodable_clip
from restyle.video import probe_video, read_frames

REPO = Path(__file__).resolve().parents[1]
N_FRAMES, CUT, INTERVAL = 30, 16, 6


def write_config(workdir: Path, video: Path, **overrides) -> Path:
    config = {
        "videos": {"clip": str(video)},
        "keyframes": {"interval": INTERVAL, "painted_dir": str(workdir / "painted" / "{video}")},
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


def without_slurm(env: dict | None = None) -> dict:
    """``env`` (default: this process's) for a Snakemake that uses no cluster: a ``scontrol``
    that fails at once (tests/no_slurm/scontrol) comes first on PATH, sparing the ~10 s the
    SLURM plugin waits at each start where SLURM is installed but not running."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(Path(__file__).parent / "no_slurm"), env.get("PATH", "")])
    return env


def snakemake(workdir: Path, *args: str, check: bool = True, on_cluster: bool = False,
              **popen) -> subprocess.CompletedProcess:
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


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "clip.mp4"
    make_test_clip(path, n_frames=N_FRAMES, size=(96, 64), cut_at=CUT, audio=True)
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, clip):
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir, clip)
    snakemake(workdir)
    return workdir


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
def test_repainting_a_keyframe_reruns_only_its_two_gaps_and_the_assembly(rendered):
    out = rendered / "results" / "clip"
    plan = json.loads((out / "keyframes.json").read_text())
    gaps = [g["name"] for g in plan["gaps"] if 6 in (g["start"], g["end"])]
    assert gaps == ["00000-00006", "00006-00012"]
    painted = 255 - cv2.imread(str(out / "styled_keyframes" / "00006.png"))
    (rendered / "painted" / "clip").mkdir(parents=True)
    cv2.imwrite(str(rendered / "painted" / "clip" / "0006.png"), painted)

    jobs = planned_jobs(rendered)
    per_gap = {(rule, f"video=clip, gap={gap}") for gap in gaps
               for rule in ("compute_flow", "synthesize_gap", "blend_gap")}
    expected = per_gap | {("stylize_keyframe", "video=clip, frame=00006"),
                                     ("encode_video", "video=clip"), ("encode_compare", "video=clip"),
                                     ("measure", "video=clip"), ("all", "")}
    assert jobs == expected

    snakemake(rendered)
    np.testing.assert_array_equal(cv2.imread(str(out / "styled_keyframes" / "00006.png")), painted)


def one_line_error(workdir: Path) -> str:
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("restyle: error:")]
    assert len(errors) == 1, lines
    assert "Traceback" not in result.stderr
    return errors[0]


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
def test_painted_frame_off_the_keyframes_is_reported(rendered):
    painted = rendered / "painted" / "clip"
    painted.mkdir(parents=True, exist_ok=True)
    image = np.zeros((64, 96, 3), np.uint8)
    cv2.imwrite(str(painted / "00007.png"), image)
    try:
        message = one_line_error(rendered)
        assert "00007.png" in message and "keyframes.extra" in message
    finally:
        (painted / "00007.png").unlink()


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
