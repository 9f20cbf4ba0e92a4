"""Mistakes in the config, the painted folders and the disk, reported before any work."""

import subprocess

import cv2
import numpy as np
import pytest
import yaml

from clips import make_reproducible_clip, overwrite_bytes
from workflow_runs import REPO, one_line_error, snakemake, write_config

from restyle import preflight


def warnings_of(workdir, *args) -> list[str]:
    result = snakemake(workdir, "-n", *args)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("restyle: warning:")]


# --------------------------------------------------------------------------------------------
# which file a config error points to, and --config on nested keys


def test_an_error_in_a_configfile_names_that_file(tmp_path, clip):
    write_config(tmp_path, clip)
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"keyframes": {"interval": 0}}))
    result = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "mine.yaml"), check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("restyle: error:")]
    assert len(errors) == 1 and errors[0].startswith("restyle: error: mine.yaml: keyframes.interval"), errors
    assert "fix it in mine.yaml" in errors[0]


def test_an_error_given_with_dash_dash_config_names_the_command_line(tmp_path, clip):
    write_config(tmp_path, clip)
    result = snakemake(tmp_path, "-n", "--config", "keyframes={interval: 0}", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("restyle: error:")]
    assert len(errors) == 1 and errors[0].startswith("restyle: error: --config: keyframes.interval"), errors


@pytest.mark.parametrize("override", ["keyframes={interval: 5}", "keep_intermediate=true",
                                      "measure={per_frame_reference: false}", "keyframes={extra: {clip: [3, 7]}}",
                                      "propagation={guide_weights: {edge: 1}}"])
def test_nested_dash_dash_config_values_get_their_schema_types(tmp_path, clip, override):
    write_config(tmp_path, clip)
    result = snakemake(tmp_path, "-n", "--config", override, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_command_line_strings_are_coerced_only_where_the_schema_wants_another_type():
    schema = preflight.load_schema(REPO)
    config = {"videos": {"7": "12"}, "keyframes": {"interval": "5", "extra": {"7": ["3", "9"]}},
              "width": "null", "keep_intermediate": "true", "flow": {"preset": "fast"}}
    preflight.coerce_command_line(config, dict(config), schema)
    assert config == {"videos": {"7": "12"}, "keyframes": {"interval": 5, "extra": {"7": [3, 9]}},
                      "width": None, "keep_intermediate": True, "flow": {"preset": "fast"}}


def test_config_errors_are_one_line_each():
    errors = preflight.check_config({"videos": {"a": "x.mp4"}, "keyframes": {"interval": 0}, "flow": {"preset": "x"}}, REPO)
    assert len(errors) == 2
    assert all("\n" not in e and "config.yaml" in e for e in errors)
    assert preflight.check_config({"videos": {"a": "x.mp4"}}, REPO) == []


# --------------------------------------------------------------------------------------------
# keyframes, overrides and painted folders that do not fit the videos


def test_an_extra_keyframe_past_the_end_is_a_one_line_error_and_keeps_the_plan(tmp_path, clip):
    write_config(tmp_path, clip, keyframes={"extra": {"clip": [500]}})
    plan = tmp_path / "results" / "clip" / "keyframes.json"
    plan.parent.mkdir(parents=True)
    plan.write_text('{"from": "an earlier run"}')
    message = one_line_error(tmp_path)
    assert "keyframes.extra.clip" in message and "500" in message and "0-29" in message
    assert plan.read_text() == '{"from": "an earlier run"}'


@pytest.mark.parametrize("section", ["keyframes", "stylizer"])
def test_settings_for_a_video_that_does_not_exist_are_errors(tmp_path, clip, section):
    if section == "keyframes":
        write_config(tmp_path, clip, keyframes={"extra": {"nosuchvideo": [5]}})
    else:
        write_config(tmp_path, clip, stylizer={"overrides": {"nosuchvideo": {5: {"seed": 1}}}})
    message = one_line_error(tmp_path)
    assert "nosuchvideo" in message and "no video" in message and "clip" in message


def test_painted_files_are_found_by_frame_number(tmp_path):
    for name in ("0010.png", "7.jpg", "notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"")
    assert {k: p.name for k, p in preflight.painted_files(tmp_path).items()} == {7: "7.jpg", 10: "0010.png"}
    (tmp_path / "cover.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cover.png: painted keyframes are named by frame number"):
        preflight.painted_files(tmp_path)
    (tmp_path / "cover.png").unlink()
    (tmp_path / "00010.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="painted twice"):
        preflight.painted_files(tmp_path)
    assert preflight.painted_files(tmp_path / "missing") == {}


def test_painted_frame_off_the_keyframes_names_the_fix():
    errors = preflight.check_painted_are_keyframes({7: "painted/v/7.png", 10: "painted/v/10.png"}, [0, 10, 20], "v")
    assert len(errors) == 1 and "painted/v/7.png" in errors[0] and "keyframes.extra: {v: [7]}" in errors[0]


def test_a_painted_folder_of_an_unknown_video_is_a_warning(tmp_path, clip):
    write_config(tmp_path, clip)
    stray = tmp_path / "painted" / "clpi"
    stray.mkdir(parents=True)
    cv2.imwrite(str(stray / "00006.png"), np.zeros((64, 96, 3), np.uint8))
    warnings = warnings_of(tmp_path)
    assert len(warnings) == 1 and "clpi" in warnings[0] and "not used" in warnings[0]


def test_a_painted_file_not_named_by_frame_number_is_an_error(tmp_path, clip):
    write_config(tmp_path, clip)
    painted = tmp_path / "painted" / "clip"
    painted.mkdir(parents=True)
    cv2.imwrite(str(painted / "key10.png"), np.zeros((64, 96, 3), np.uint8))
    (painted / "notes.txt").write_text("ignored: not an image")
    message = one_line_error(tmp_path)
    assert "key10.png" in message and "rename it to 10.png" in message


def test_a_painted_file_with_transparency_is_an_error_and_an_opaque_one_is_fine(tmp_path, clip):
    write_config(tmp_path, clip)
    painted = tmp_path / "painted" / "clip"
    painted.mkdir(parents=True)
    rgba = np.full((64, 96, 4), 200, np.uint8)
    rgba[..., 3] = 255
    cv2.imwrite(str(painted / "00006.png"), rgba)
    assert snakemake(tmp_path, "-n").returncode == 0
    rgba[:10, :10, 3] = 0
    cv2.imwrite(str(painted / "00006.png"), rgba)
    message = one_line_error(tmp_path)
    assert "00006.png" in message and "transparent" in message and "flatten" in message


def test_a_video_damaged_in_the_middle_is_refused_with_the_frames_and_the_fix(tmp_path):
    damaged = tmp_path / "damaged.mp4"
    make_reproducible_clip(damaged, n_frames=48)
    overwrite_bytes(damaged, 0.3, 0.6)
    write_config(tmp_path, damaged)
    message = one_line_error(tmp_path)
    assert "damaged.mp4: frames " in message and "cannot be decoded" in message
    assert "decode_errors: repair" in message
    assert not (tmp_path / "results").exists()  # refused before any job ran


# --------------------------------------------------------------------------------------------
# disk space


def test_disk_estimate_grows_with_the_video_and_with_kept_intermediates():
    info = {"clip": {"size": (1920, 1080), "probe": {"n_frames": 1000}}}
    base = preflight.disk_needed_mb(info, interval=10, keep_intermediate=False, cores=2)
    kept = preflight.disk_needed_mb(info, interval=10, keep_intermediate=True, cores=2)
    assert 10_000 < base < 20_000  # kept frames and blended frames of 1,000 1080p frames plus two gaps
    assert kept > 5 * base


def test_a_run_that_cannot_fit_is_refused_before_any_work(tmp_path, clip, small_disk):
    write_config(tmp_path, clip)
    message = one_line_error(tmp_path)
    assert message.startswith("restyle: error: results: not enough disk space")
    assert "MB more" in message and "MB are free" in message and "check_disk_space: false" in message
    assert not any(small_disk.iterdir())


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_the_same_command_finishes_after(tmp_path, clip, small_disk):
    write_config(tmp_path, clip, check_disk_space=False)
    result = snakemake(tmp_path, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("restyle: error:")]
    assert lines and "disk full" in lines[0] and "MB free" in lines[0] and "results/clip" in lines[0], \
        result.stderr[-3000:]
    assert "Traceback" not in result.stderr.split("Error in rule")[0]
    frames_before = sorted(p.name for p in (small_disk / "clip" / "frames").iterdir())
    assert len([n for n in frames_before if n.endswith(".png")]) == 30  # finished work is kept
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    snakemake(tmp_path)
    assert (small_disk / "clip" / "restyled.mp4").exists()
