import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clips import synthetic_frames
from restyle import io
from restyle.assemble import restyled_frame_paths
from restyle.evaluate import evaluate_video, frames_between_stylized_keyframes
from restyle.keyframes import plan
from restyle.preflight import check_config, check_painted_are_keyframes, painted_files
from restyle.timings import stage_timings
from restyle.stylize import make_stylizer

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_images_round_trip_in_rgb_and_leave_no_temporary_files(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 200  # red
    io.write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.png"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    # Readable by others as any new file would be, not private like a temporary file.
    assert (tmp_path / "a.png").stat().st_mode & 0o044 == 0o044 & ~_umask()


def _umask():
    import os
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_unreadable_image_error_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(io.ImageError, match="bad.png: cannot read"):
        io.read_image(tmp_path / "bad.png")


def test_staged_directory_appears_only_on_success(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with io.staged_directory(target) as folder:
            (folder / "x").write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with io.staged_directory(target) as folder:
        (folder / "x").write_text("whole")
    assert (target / "x").read_text() == "whole"


def test_a_directory_output_with_a_file_removed_is_incomplete_and_swept(tmp_path):
    for name in ("00000-00004", "00004-00008"):
        with io.staged_directory(tmp_path / name) as folder:
            (folder / "fwd").mkdir()
            for t in range(3):
                io.write_image(folder / "fwd" / f"edge_{t:05d}.png", np.zeros((4, 4), np.uint8))
    assert io.directory_is_complete(tmp_path / "00000-00004")
    (tmp_path / "00004-00008" / "fwd" / "edge_00001.png").unlink()  # as a killed rmtree leaves it
    (tmp_path / ".00008-00012.staging").mkdir()  # a writer's staging folder: not ours to judge
    assert not io.directory_is_complete(tmp_path / "00004-00008")
    assert io.remove_incomplete_directories(tmp_path) == [tmp_path / "00004-00008"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".00008-00012.staging", "00000-00004"]


def test_rewriting_a_directory_output_never_shows_a_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with io.staged_directory(target) as folder:
        (folder / "a").write_text("old")
    seen = []
    real_replace = io.os.replace

    def watching_replace(src, dst):
        seen.append(io.directory_is_complete(target) if target.exists() else None)
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", watching_replace)
    with io.staged_directory(target) as folder:
        (folder / "a").write_text("new")
    assert None not in seen[:1] and all(state in (True, None) for state in seen)
    assert (target / "a").read_text() == "new" and io.directory_is_complete(target)


def test_painted_files_are_found_by_frame_number(tmp_path):
    for name in ("0010.png", "7.jpg", "notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"")
    assert {k: p.name for k, p in painted_files(tmp_path).items()} == {7: "7.jpg", 10: "0010.png"}
    (tmp_path / "cover.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cover.png: painted keyframes are named by frame number"):
        painted_files(tmp_path)
    (tmp_path / "cover.png").unlink()
    (tmp_path / "00010.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="painted twice"):
        painted_files(tmp_path)
    assert painted_files(tmp_path / "missing") == {}


def test_painted_frame_off_the_keyframes_names_the_fix():
    errors = check_painted_are_keyframes({7: "painted/v/7.png", 10: "painted/v/10.png"}, [0, 10, 20], "v")
    assert len(errors) == 1 and "painted/v/7.png" in errors[0] and "keyframes.extra: {v: [7]}" in errors[0]


def test_config_errors_are_one_line_each():
    errors = check_config({"videos": {"a": "x.mp4"}, "keyframes": {"interval": 0}, "flow": {"preset": "x"}}, REPO)
    assert len(errors) == 2
    assert all("\n" not in e and "config.yaml" in e for e in errors)
    assert check_config({"videos": {"a": "x.mp4"}}, REPO) == []


def test_stage_timings_sum_jobs_per_stage(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "compute_flow").mkdir()
    (tmp_path / "compute_flow" / "a.tsv").write_text(header + "1.5\t0:00:01\t100\t1\t1\t1\t0\t0\t50\t1.0\n")
    (tmp_path / "compute_flow" / "b.tsv").write_text(header + "2.5\t0:00:02\t300\t1\t1\t1\t0\t0\t50\t2.0\n")
    (tmp_path / "encode_video.tsv").write_text(header + "0.5\t0:00:00\t50\t1\t1\t1\t0\t0\t50\t0.25\n")
    timings = stage_timings(tmp_path)
    assert timings["compute_flow"] == {"jobs": 2, "wall_s": 4.0, "cpu_s": 3.0, "max_rss_mb": 300.0}
    assert timings["encode_video"]["jobs"] == 1


def test_restyled_frame_paths_interleave_keyframes_and_gaps():
    manifest = plan(8, [], 4)  # keyframes 0, 4, 7
    paths = restyled_frame_paths(manifest, ["k0.png", "k4.png", "k7.png"], ["g1", "g2"])
    assert [str(p) for p in paths] == ["k0.png", "g1/00001.png", "g1/00002.png", "g1/00003.png", "k4.png",
                                       "g2/00005.png", "g2/00006.png", "k7.png"]


def test_evaluate_video_scores_flicker_and_skips_the_cut():
    frames = list(synthetic_frames(10, (64, 48), cut_at=5, seed=2))
    manifest = plan(10, [5], 3)
    flicker = [np.clip(f.astype(int) + (15 if t % 2 else -15), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    steady = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t])
    flickering = evaluate_video(manifest, lambda t: flicker[t], lambda t: frames[t],
                                per_frame_stylizer=make_stylizer("builtin", look="oil"))
    assert [row["frame"] for row in steady["e_warp_per_frame"]] == [1, 2, 3, 4, 6, 7, 8, 9]
    assert steady["e_warp"]["output"] == pytest.approx(steady["e_warp"]["input"])
    assert flickering["e_warp"]["output"] > 5 * flickering["e_warp"]["input"]
    assert flickering["fidelity"]["frames_compared"] == 10 - len(manifest["keyframes"])


def test_fidelity_leaves_out_frames_propagated_from_painted_keyframes():
    frames = list(synthetic_frames(10, (64, 48), cut_at=None, seed=2))
    manifest = plan(10, [], 3)  # keyframes 0 3 6 9
    painted = {3}
    compared = frames_between_stylized_keyframes(manifest, painted)
    assert compared == {7, 8}
    stylizer = make_stylizer("builtin", look="oil")
    report = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t], per_frame_stylizer=stylizer,
                            fidelity_frames=compared)
    assert report["fidelity"]["frames_compared"] == 2
    all_painted = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t], per_frame_stylizer=stylizer,
                                 fidelity_frames=frames_between_stylized_keyframes(manifest, {0, 3, 6, 9}))
    assert "painted" in all_painted["fidelity"]["reason_absent"]
    assert "per_frame_stylization" in all_painted["e_warp"]  # the flicker it removes is still measured


def test_a_one_line_error_of_a_rule_script_reaches_the_terminal_without_traceback(tmp_path):
    log = tmp_path / "job.log"
    script = (f"from restyle import io; io.log_to({str(log)!r}); "
              "raise io.ImageError('frames/00007.png: cannot read this image')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip() == "restyle: error: frames/00007.png: cannot read this image"
    assert "Traceback" in log.read_text()  # the log keeps the whole story


def test_a_rule_scripts_uncaught_error_lands_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    script = f"from restyle import io; io.log_to({str(log)!r}); raise ValueError('frame 7 is damaged')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 1
    assert "ValueError: frame 7 is damaged" in log.read_text()
    assert "ValueError: frame 7 is damaged" in result.stderr  # still on stderr for the job's output
