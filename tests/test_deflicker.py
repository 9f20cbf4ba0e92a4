"""Deflickering as library functions (restyle.deflicker): guided patch blending in both forms,
and blind deflickering, on small generated clips."""

import dataclasses

import cv2
import numpy as np
import pytest

from clips import synthetic_frames

from restyle.deflicker import (BlindSettings, RemapSettings, apply_colour_map, clipped_detail, colour_transform,
                               compose_colour_maps, deflicker_blind, invert_colour_map, iter_patch_blend,
                               patch_blend, shot_colour_maps)
from restyle.metrics import psnr, sharpness, synthetic_flicker, warping_error

SETTINGS = RemapSettings(guide_weight=10.0, style_weight=1.0, patch_size=5, patchmatch_iters=1, search_radius=8,
                         error_scale=100.0, flow_preset="medium", seed=0)
BLIND = BlindSettings(atlas_width=96, atlas_window=None, refine_window=2, refine_sigma=2.0,
                      error_scale=1000.0)


@pytest.fixture(scope="module")
def moving():
    """A clean one-shot clip: a panning texture with a blob moving on its own, 16 frames."""
    return list(synthetic_frames(16, (96, 64), cut_at=None))


@pytest.fixture(scope="module")
def jittered(moving):
    """The clip 'processed' per frame with a random colour cast each frame, as per-frame
    stylization flickers."""
    rng = np.random.default_rng(5)
    return [np.clip(f * rng.uniform(0.85, 1.15, 3) + rng.uniform(-12, 12, 3), 0, 255).astype(np.uint8)
            for f in moving]


def _mean_psnr(frames, references):
    return float(np.mean([psnr(a, b) for a, b in zip(frames, references)]))


def _blind(frames):
    maps = shot_colour_maps(frames, blind=BLIND, flow_preset=SETTINGS.flow_preset)
    return deflicker_blind(frames, maps, blind=BLIND, settings=SETTINGS)


@pytest.mark.parametrize("form", ["exact", "table"])
def test_a_static_clip_stays_the_same(moving, form):
    still = [moving[0]] * 8
    out = patch_blend(still, still, window=3, form=form, settings=SETTINGS)
    assert min(psnr(o, still[0]) for o in out) >= 50


@pytest.mark.parametrize("form", ["exact", "table"])
def test_a_clean_moving_video_is_left_nearly_unchanged(moving, form):
    out = patch_blend(moving, moving, window=4, form=form, settings=SETTINGS)
    assert _mean_psnr(out, moving) >= 40


def test_guided_blending_removes_per_frame_colour_flicker(moving, jittered):
    out = patch_blend(jittered, moving, window=7, form="table", settings=SETTINGS)
    before, after, floor = (warping_error(v, moving) for v in (jittered, out, moving))
    assert after < 0.25 * before
    assert after < 3 * floor


def test_the_table_form_agrees_with_the_exact_form(moving, jittered):
    exact = patch_blend(jittered, moving, window=5, form="exact", settings=SETTINGS)
    table = patch_blend(jittered, moving, window=5, form="table", settings=SETTINGS)
    assert _mean_psnr(table, exact) >= 38


@pytest.mark.parametrize("form", ["exact", "table"])
def test_a_chunk_with_its_context_gives_the_bytes_of_the_whole_clip(moving, jittered, form):
    window = 3
    whole = patch_blend(jittered, moving, window=window, form=form, settings=SETTINGS)
    start, stop = 6, 10  # the chunk's own frames; context is window frames either side
    lo, hi = start - window, stop + window
    chunk = patch_blend(jittered[lo:hi], moving[lo:hi], window=window, form=form, settings=SETTINGS,
                        targets=range(start - lo, stop - lo), first_index=lo)
    for a, b in zip(chunk, whole[start:stop]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("detail_gain", [1.0, 1.3])
def test_the_result_does_not_depend_on_the_thread_count(moving, jittered, detail_gain):
    settings = dataclasses.replace(SETTINGS, detail_gain=detail_gain)
    one = patch_blend(jittered, moving, window=3, form="table", settings=settings, threads=1)
    two = patch_blend(jittered, moving, window=3, form="table", settings=settings, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_frames_come_one_at_a_time_in_order_with_the_same_bytes(moving, jittered):
    targets = [9, 4, 5]
    listed = patch_blend(jittered, moving, window=2, form="table", settings=SETTINGS, targets=targets)
    pairs = list(iter_patch_blend(jittered, moving, window=2, form="table", settings=SETTINGS, targets=targets))
    assert [t for t, _ in pairs] == [4, 5, 9]
    for (t, frame), expected in zip(pairs, [listed[1], listed[2], listed[0]]):
        np.testing.assert_array_equal(frame, expected)


def test_detail_restoration_sharpens_the_average_but_never_past_the_frames():
    """Blending copies of a texture that re-arranges every frame lowers its contrast; the
    detail gain gives some back, at most up to the frames' own."""
    rng = np.random.default_rng(1)
    still = [np.full((48, 64, 3), 128, np.uint8)] * 9
    swimming = [np.clip(128 + cv2.GaussianBlur(rng.normal(0, 40, (48, 64, 3)), (0, 0), 0.8), 0, 255).astype(np.uint8)
                for _ in still]
    frames_sharpness = np.mean([sharpness(f) for f in swimming])
    plain = patch_blend(swimming, still, window=3, form="table", settings=SETTINGS)
    restored = patch_blend(swimming, still, window=3, form="table",
                           settings=dataclasses.replace(SETTINGS, detail_gain=1.5))
    plain_sharpness = np.mean([sharpness(f) for f in plain])
    restored_sharpness = np.mean([sharpness(f) for f in restored])
    assert plain_sharpness < 0.7 * frames_sharpness
    assert restored_sharpness > 1.3 * plain_sharpness
    assert restored_sharpness <= frames_sharpness


def test_a_globally_flickering_static_scene_comes_out_constant(moving):
    still = [moving[3]] * 12
    flickering = list(synthetic_flicker(still, window=1, strength=1.0, seed=2))
    out = _blind(flickering)
    brightness = np.array([o.mean(axis=(0, 1)) for o in out])
    assert np.ptp(np.array([f.mean(axis=(0, 1)) for f in flickering]), axis=0).max() > 20
    assert np.ptp(brightness, axis=0).max() < 1.5
    # ... and every pixel is steady, not only the mean.
    assert np.std(np.asarray(out, np.float32), axis=0).mean() < 1.0


def test_blind_deflickering_removes_synthetic_flicker_and_keeps_a_clean_clip(moving):
    flickering = list(synthetic_flicker(moving, window=1, strength=1.0, seed=4))
    out = _blind(flickering)
    floor = warping_error(moving, moving)
    assert warping_error(out, moving) < 2 * floor < 0.1 * warping_error(flickering, moving)
    assert _mean_psnr(out, moving) > _mean_psnr(flickering, moving) + 6
    assert _mean_psnr(_blind(moving), moving) >= 36


def test_highlights_the_flicker_pushes_past_white_are_steadied_too(moving):
    """Which pixels clip changes with the flicker, and a clipped frame has no detail of its
    own there: the refinement takes its neighbours' instead of keeping a flat patch."""
    bright = [np.clip(f.astype(np.float32) * 1.3, 0, 255).astype(np.uint8) for f in moving]
    flickering = list(synthetic_flicker(bright, window=1, strength=1.0, seed=4))
    assert np.mean([f.max(axis=2) == 255 for f in flickering]) > 0.1
    floor = warping_error(bright, bright)
    assert warping_error(_blind(flickering), bright) < 2.2 * floor


def test_clipped_detail_marks_clipped_pixels_feathered_over_a_few_pixels():
    frame = np.full((40, 40, 3), 128, np.uint8)
    frame[10:20, 10:20] = 255
    frame[30:, 30:, 2] = 0  # one channel at black is clipped too
    lost = clipped_detail(frame, radius=2)
    assert lost.dtype == np.float32 and lost.shape == (40, 40)
    assert lost[15, 15] == 1.0 and lost[35, 35] == 1.0
    assert lost[15, 30] < 1e-3 and lost[2, 2] < 1e-3
    assert 0.0 < lost[15, 21] < 1.0  # feathered just outside the clipped block


def test_the_colour_transform_undoes_exposure_white_balance_and_shading(moving):
    clean = moving[0].astype(np.float32)
    height, width = clean.shape[:2]
    x = (np.arange(width) + 0.5) / width - 0.5
    shading = 10 * x[None, :, None] * np.array([1.0, -0.5, 0.3])
    flickered = clean * np.array([1.2, 1.1, 0.9]) + np.array([8.0, -5.0, 3.0]) + shading
    coefficients = colour_transform(clean, flickered)
    restored = apply_colour_map(flickered, coefficients)
    assert np.abs(restored - clean).max() < 0.5
    # Maps compose and invert exactly: there and back again is the frame itself.
    there = colour_transform(flickered, clean)
    assert np.abs(apply_colour_map(clean, compose_colour_maps(coefficients, there)) - clean).max() < 1e-3
    assert np.abs(apply_colour_map(apply_colour_map(clean, there), invert_colour_map(there)) - clean).max() < 1e-3


def test_blind_deflickering_keeps_a_slow_intended_fade_with_an_atlas_window(moving):
    """A colourist's fade (brightness falling steadily over the shot) is content, not flicker:
    with a reference averaged over a few frames each side it stays; only the jitter goes."""
    fade = [np.clip(f.astype(np.float32) * (1.0 - 0.03 * t), 0, 255).astype(np.uint8) for t, f in enumerate(moving)]
    rng = np.random.default_rng(2)
    flickering = [np.clip(f * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8) for f in fade]
    windowed = dataclasses.replace(BLIND, atlas_window=2, refine_window=0)
    maps = shot_colour_maps(flickering, blind=windowed, flow_preset=SETTINGS.flow_preset)
    out = deflicker_blind(flickering, maps, blind=windowed, settings=SETTINGS)
    brightness = np.array([f.mean() for f in out])
    assert brightness[-1] < 0.7 * brightness[0]  # the fade is kept
    assert _mean_psnr(out, fade) > _mean_psnr(flickering, fade) + 3


def test_bad_inputs_get_one_line_errors(moving):
    with pytest.raises(ValueError, match="window must be a whole number of frames >= 1"):
        patch_blend(moving, moving, window=0, form="table", settings=SETTINGS)
    with pytest.raises(ValueError, match="guide has 15 frames but the processed video has 16"):
        patch_blend(moving, moving[:15], window=2, form="table", settings=SETTINGS)
    small = [f[:32, :48] for f in moving]
    with pytest.raises(ValueError, match="guide frames are 48x32 but the processed ones are 96x64"):
        patch_blend(moving, small, window=2, form="exact", settings=SETTINGS)
    with pytest.raises(ValueError, match="unknown deflicker form 'fast'"):
        patch_blend(moving, moving, window=2, form="fast", settings=SETTINGS)
    with pytest.raises(ValueError, match="patch_size must be odd"):
        RemapSettings(**{**SETTINGS.__dict__, "patch_size": 4})
