import pytest

from clips import synthetic_frames
from restyle.scenes import detect_cuts


def test_content_detector_finds_the_hard_cut_and_nothing_else():
    frames = synthetic_frames(40, (96, 64), cut_at=22, seed=3)
    assert detect_cuts(iter(frames), fps=24.0, method="content", min_scene_len=5) == [22]


def test_a_single_shot_has_no_cut():
    frames = synthetic_frames(30, (96, 64), cut_at=None, seed=4)
    assert detect_cuts(frames, fps=24.0) == []


def test_large_frames_are_downscaled_and_still_cut():
    frames = [f.repeat(4, axis=0).repeat(4, axis=1) for f in synthetic_frames(30, (96, 64), cut_at=15, seed=5)]
    assert frames[0].shape[1] > 256
    assert detect_cuts(frames, fps=30.0, min_scene_len=5) == [15]


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scene detector 'magic'"):
        detect_cuts([], fps=24.0, method="magic")
