"""restyle.io: images, directory outputs that appear whole or not at all, and rule scripts'
errors (one line on the terminal, the whole story in the job's log)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from workflow_runs import REPO

from restyle import io


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_images_round_trip_in_rgb_and_leave_no_temporary_files(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 200  # red
    io.write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.png"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    # Readable by others as any new file would be, not private like a temporary file.
    assert (tmp_path / "a.png").stat().st_mode & 0o044 == 0o044 & ~current_umask()


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


# --------------------------------------------------------------------------------------------
# a rule script's errors


def test_a_one_line_error_of_a_rule_script_reaches_the_terminal_without_traceback(tmp_path):
    log = tmp_path / "job.log"
    script = (f"from restyle import io\nwith io.job_log({str(log)!r}):\n"
              "    raise io.ImageError('frames/00007.png: cannot read this image')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip() == "restyle: error: frames/00007.png: cannot read this image"
    assert "Traceback" in log.read_text()  # the log keeps the whole story


def test_a_rule_scripts_uncaught_error_lands_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    script = f"from restyle import io\nwith io.job_log({str(log)!r}):\n    raise ValueError('frame 7 is damaged')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 1
    assert "ValueError: frame 7 is damaged" in log.read_text()
    assert "ValueError: frame 7 is damaged" in result.stderr  # still on stderr for the job's output


def test_a_rule_scripts_log_changes_no_process_wide_hook(tmp_path):
    hook = sys.excepthook
    with pytest.raises(SystemExit):
        with io.job_log(tmp_path / "job.log"):
            raise io.DiskFullError("results: disk full")
    assert sys.excepthook is hook


def test_a_small_image_written_to_a_full_disk_is_a_disk_full_error_not_an_empty_file(small_disk):
    try:  # fill the file system to the last byte
        with open(small_disk / "filler", "wb") as filler:
            while True:
                filler.write(b"x" * 4096)
                filler.flush()
    except OSError:
        pass
    # Small enough to sit in one write buffer: cv2.imwrite reports success for the empty file
    # the failed flush leaves, and the job reading it back fails with a traceback.
    mask = np.zeros((48, 64), np.uint8)
    with pytest.raises(io.DiskFullError, match="mask.png: disk full"):
        io.write_image(small_disk / "mask.png", mask)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_lazy_frames_decode_on_access_and_keep_only_the_cache(tmp_path):
    images = [np.full((4, 6, 3), 10 * t, np.uint8) for t in range(5)]
    paths = []
    for t, image in enumerate(images):
        paths.append(tmp_path / io.frame_name(t))
        io.write_image(paths[-1], image)
    frames = io.LazyFrames(paths, cache=2)
    assert len(frames) == 5
    for t in (0, 3, 4, -1, 1):
        np.testing.assert_array_equal(frames[t], images[t])
    assert len(frames._items) == 2
    assert [f[0, 0, 0] for f in frames[1:4]] == [10, 20, 30]
    with pytest.raises(IndexError):
        frames[5]


def test_lazy_map_computes_each_item_once_while_cached():
    calls = []
    squares = io.LazyMap(lambda i: calls.append(i) or np.full(2, i * i), 6, cache=3)
    assert [int(squares[i][0]) for i in (1, 2, 1, 3, 2, 5, 1)] == [1, 4, 1, 9, 4, 25, 1]
    # 1 was evicted by 5 (least recently used after 3, 2), so it is computed again.
    assert calls == [1, 2, 3, 5, 1]
    assert len(squares) == 6 and len(squares[4:]) == 2
