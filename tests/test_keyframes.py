import pytest

from restyle.keyframes import (Gap, frame_sources, gaps_between, keyframes_for_scenes, parse_gap_name, plan,
                               reference_keyframes, scene_keyframes, scene_ranges)


def test_scene_ranges_split_at_cuts_and_ignore_bad_values():
    assert scene_ranges([30, 0, 30, 99, 120], 100) == [(0, 30), (30, 99), (99, 100)]
    assert scene_ranges([], 5) == [(0, 5)]
    with pytest.raises(ValueError, match="at least one frame"):
        scene_ranges([], 0)


def test_keyframes_every_interval_plus_each_scene_end():
    scenes = [(0, 25), (25, 31)]
    assert keyframes_for_scenes(scenes, 10) == [0, 10, 20, 24, 25, 30]


def test_interval_one_makes_every_frame_a_keyframe_and_no_gaps():
    manifest = plan(7, [3], 1)
    assert manifest["keyframes"] == list(range(7))
    assert manifest["gaps"] == []


def test_interval_below_one_is_rejected():
    with pytest.raises(ValueError, match="interval must be >= 1"):
        plan(10, [], 0)


def test_gaps_never_cross_a_cut_and_the_tail_ends_at_the_last_frame():
    manifest = plan(47, [22], 10)
    gaps = [(g["start"], g["end"]) for g in manifest["gaps"]]
    assert gaps == [(0, 10), (10, 20), (22, 32), (32, 42), (42, 46)]
    assert manifest["keyframes"][-1] == 46
    for g in manifest["gaps"]:
        assert not (g["start"] < 22 <= g["end"])


def test_adjacent_keyframes_leave_no_gap():
    # scene (0, 11): keys 0, 10; 10 is also the scene end.  Scene (11, 13): keys 11, 12.
    manifest = plan(13, [11], 10)
    assert [g["name"] for g in manifest["gaps"]] == ["00000-00010"]


def test_painted_frames_become_keyframes_and_split_gaps():
    manifest = plan(30, [], 10, extra_keyframes=(14,))
    assert 14 in manifest["keyframes"]
    assert [(g["start"], g["end"]) for g in manifest["gaps"]] == [(0, 10), (10, 14), (14, 20), (20, 29)]
    with pytest.raises(ValueError, match="outside the video"):
        plan(30, [], 10, extra_keyframes=(30,))


@pytest.mark.parametrize("n_frames, cuts, interval, extra", [
    (83, [17, 40, 41], 7, ()),
    (30, [], 10, (11, 14)),  # painted 11 next to keyframe 10: no gap between them
])
def test_every_frame_is_a_keyframe_or_inside_exactly_one_gap(n_frames, cuts, interval, extra):
    manifest = plan(n_frames, cuts, interval, extra_keyframes=extra)
    keys = manifest["keyframes"]
    # Counted over the gaps themselves: overlapping gaps would propagate a frame twice.
    for t in range(n_frames):
        holding = [g["name"] for g in manifest["gaps"] if g["start"] < t < g["end"]]
        assert len(holding) == (0 if t in keys else 1), (t, holding)
    # Each gap runs between two consecutive keyframes, so it shares only its ends with others.
    consecutive = set(zip(keys, keys[1:]))
    assert all((g["start"], g["end"]) in consecutive for g in manifest["gaps"])
    sources = frame_sources(manifest)
    assert len(sources) == n_frames
    for t, gap in enumerate(sources):
        assert (gap is None) == (t in keys)


def test_a_gap_is_named_by_its_keyframes_and_the_name_reads_back():
    gap = Gap(10, 14, 0)
    assert gap.name == "00010-00014"
    assert parse_gap_name(gap.name) == (10, 14)


def test_gaps_between_single_frame_scene():
    scenes = [(0, 5), (5, 6), (6, 12)]
    keys = keyframes_for_scenes(scenes, 10)
    assert keys == [0, 4, 5, 6, 11]
    assert [(g.start, g.end) for g in gaps_between(keys, scenes)] == [(0, 4), (6, 11)]


def test_reference_keyframes_are_the_scene_first_and_previous():
    manifest = plan(47, [22], 10)
    keys = scene_keyframes(manifest, 35)
    assert keys == [22, 32, 42, 46]
    assert reference_keyframes(keys, 22) == []
    assert reference_keyframes(keys, 32) == [22]
    assert reference_keyframes(keys, 46) == [22, 42]
    with pytest.raises(ValueError, match="not one of the scene's keyframes"):
        reference_keyframes(keys, 35)
