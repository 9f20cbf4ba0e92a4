"""Chunk planning of the deflicker stage (restyle.chunks), without Snakemake."""

import pytest

from pathlib import Path

from restyle import chunks, keyframes, preflight

REPO = Path(__file__).resolve().parents[1]


def test_chunks_split_each_scene_and_never_cross_a_cut():
    plan = chunks.plan(30, [16], frames_per_job=6)
    assert [(c["start"], c["end"], c["scene"]) for c in plan["chunks"]] == [
        (0, 6, 0), (6, 12, 0), (12, 16, 0), (16, 22, 1), (22, 28, 1), (28, 30, 1)]
    assert [c["name"] for c in plan["chunks"]][:2] == ["00000-00005", "00006-00011"]
    assert chunks.parse_chunk_name("00012-00015") == (12, 16)
    assert chunks.chunk_of_frame(plan)[15] == "00012-00015"
    assert chunks.find_chunk(plan, "00016-00021")["scene"] == 1
    with pytest.raises(ValueError):
        chunks.plan(30, [], frames_per_job=0)


def test_context_is_the_window_each_side_clipped_to_the_scene():
    plan = chunks.plan(30, [16], frames_per_job=6)
    by_name = {c["name"]: c for c in plan["chunks"]}
    assert chunks.context(plan, by_name["00006-00011"], 3) == (3, 15)
    assert chunks.context(plan, by_name["00012-00015"], 3) == (9, 16)  # not past the cut
    assert chunks.context(plan, by_name["00016-00021"], 3) == (16, 25)
    assert chunks.context(plan, by_name["00000-00005"], 100) == (0, 16)
    assert [c["name"] for c in chunks.chunks_covering(plan, 9, 16)] == ["00006-00011", "00012-00015"]


def test_measured_ranges_score_every_pair_of_every_scene_once():
    plan = chunks.plan(30, [16], frames_per_job=4)
    pairs = [t for c in plan["chunks"] for t in range(*chunks.measured_range(plan, c))[1:]]
    assert pairs == [t for t in range(1, 30) if t != 16]


def test_a_chunk_reads_only_the_gaps_and_keyframes_its_context_touches():
    manifest = keyframes.plan(30, [16], interval=6)
    plan = chunks.plan_for_restyled(manifest, frames_per_job=4)
    sources = keyframes.frame_sources(plan)
    contexts = {c["name"]: chunks.context(plan, c, 1) for c in plan["chunks"]}
    assert chunks.context_sources(sources, *contexts["00016-00019"]) == ([16], ["00016-00022"])
    assert chunks.context_sources(sources, *contexts["00020-00023"]) == ([22], ["00016-00022", "00022-00028"])
    assert chunks.context_sources(sources, *contexts["00028-00029"]) == ([28, 29], ["00022-00028"])
    # Repainting keyframe 28 touches gap 00022-00028 and the keyframe itself: three of the scene's four chunks.
    touched = {name for name, (lo, hi) in contexts.items()
               if 28 in chunks.context_sources(sources, lo, hi)[0]
               or "00022-00028" in chunks.context_sources(sources, lo, hi)[1]}
    assert touched == {"00020-00023", "00024-00027", "00028-00029"}


def test_an_even_deflicker_patch_size_is_one_line_before_any_job():
    errors = preflight.check_config({"videos": {"a": "a.mp4"}, "deflicker": {"patch_size": 4}}, REPO)
    assert errors == ["config.yaml: deflicker patch_size must be odd and >= 3, got 4 (fix it in config.yaml)"]
