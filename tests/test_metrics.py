"""Tests for restyle.metrics on small synthetic clips (64x48)."""

from __future__ import annotations

import math
import weakref

import cv2
import numpy as np
import pytest

from restyle.flow import compute_flow, consecutive_flows
from restyle.metrics import (
    flicker_field,
    psnr,
    sharpness,
    sharpness_ratio,
    synthetic_flicker,
    valid_pixel_mask,
    warping_error,
    warping_error_pair,
    warping_errors,
)

HEIGHT, WIDTH = 48, 64


def smooth_texture(shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    """A smooth colour texture sampled on a grid translated by (shift_x, shift_y) pixels.

    The texture is a continuous function, so sub-pixel translations are exact (no resampling).
    """
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    x = x - shift_x
    y = y - shift_y
    red = 0.5 + 0.2 * np.sin(2 * np.pi * x / 17 + 0.3) * np.cos(2 * np.pi * y / 13) \
        + 0.15 * np.sin(2 * np.pi * (0.6 * x + 0.8 * y) / 11 + 1.0)
    green = 0.5 + 0.2 * np.cos(2 * np.pi * (x + y) / 19)
    blue = 0.5 + 0.15 * np.sin(2 * np.pi * x / 23) * np.sin(2 * np.pi * y / 9 + 0.5)
    return np.clip(np.rint(np.stack([red, green, blue], -1) * 255), 0, 255).astype(np.uint8)


def translating_clip(frames: int = 5, step: float = 0.4) -> list[np.ndarray]:
    return [smooth_texture(step * t, 0.5 * step * t) for t in range(frames)]


def with_brightness_flicker(frames: list[np.ndarray], amplitude: float = 0.1, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    gains = 1.0 + rng.uniform(-amplitude, amplitude, size=len(frames))
    return [np.clip(np.rint(f * g), 0, 255).astype(np.uint8) for f, g in zip(frames, gains)]


def per_pair_errors(output, clip):
    """``err_t`` of ``output`` through the flows of ``clip``."""
    return warping_errors(({"output": frame} for frame in output), consecutive_flows(clip, "medium")).get("output", np.zeros(0))


# --------------------------------------------------------------------------- E_warp


def test_static_clip_has_zero_warping_error():
    frame = smooth_texture()
    clip = [frame.copy() for _ in range(4)]
    per_frame = per_pair_errors(clip, clip)
    assert per_frame.shape == (3,)
    assert np.all(per_frame == 0.0)
    assert warping_error(clip, clip) == 0.0


def test_subpixel_translation_is_small_and_flicker_raises_it_by_orders_of_magnitude():
    clip = translating_clip()
    clean = warping_error(clip, clip)
    flickering = warping_error(with_brightness_flicker(clip), clip)
    assert clean < 1e-4
    assert flickering > 100 * clean


def test_output_equal_to_input_scores_the_input_floor():
    clip = translating_clip()
    floor = warping_error(clip, clip)
    copies = (frame.copy() for frame in clip)  # a generator, consumed lazily
    assert warping_error(copies, iter(clip)) == floor
    assert floor > 0.0  # the clip moves: bilinear resampling leaves a small residual


def test_precomputed_flows_give_the_same_result_and_need_no_input():
    clip = translating_clip(4)
    flicker = with_brightness_flicker(clip)
    pairs = [(compute_flow(clip[t - 1], clip[t]), compute_flow(clip[t], clip[t - 1])) for t in range(1, 4)]
    computed = per_pair_errors(flicker, clip)
    from_cache = warping_errors(({"output": frame} for frame in flicker), pairs)["output"]
    np.testing.assert_array_equal(computed, from_cache)
    assert warping_error(flicker, clip) == computed.mean()


def test_several_videos_through_the_same_flows_score_each_as_alone():
    clip = translating_clip(4)
    flicker = with_brightness_flicker(clip)
    both = warping_errors(({"output": o, "input": i} for o, i in zip(flicker, clip)), consecutive_flows(clip, "medium"))
    np.testing.assert_array_equal(both["output"], per_pair_errors(flicker, clip))
    np.testing.assert_array_equal(both["input"], per_pair_errors(clip, clip))


def test_per_frame_error_matches_the_formula():
    clip = translating_clip(2)
    output = with_brightness_flicker(clip)
    forward = compute_flow(clip[0], clip[1])
    backward = compute_flow(clip[1], clip[0])
    valid = valid_pixel_mask(forward, backward)
    assert valid.mean() > 0.9
    # Reference implementation written out: bilinear sampling of O_1 at x + F(x).
    map_x = forward[..., 0] + np.arange(WIDTH, dtype=np.float32)[None, :]
    map_y = forward[..., 1] + np.arange(HEIGHT, dtype=np.float32)[:, None]
    warped = cv2.remap(output[1].astype(np.float32) / 255, map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    expected = np.mean(((warped - output[0].astype(np.float32) / 255) ** 2)[valid])
    assert per_pair_errors(output, clip)[0] == pytest.approx(expected, rel=1e-6)
    assert warping_error_pair(output[0], output[1], forward, backward) == pytest.approx(expected, rel=1e-6)


def test_no_valid_pixel_gives_zero():
    frame = smooth_texture()
    wild_forward = np.full((HEIGHT, WIDTH, 2), 5.0, np.float32)
    wild_backward = np.full((HEIGHT, WIDTH, 2), 5.0, np.float32)  # round trip off by 10 px
    assert not valid_pixel_mask(wild_forward, wild_backward).any()
    assert warping_error_pair(frame, 255 - frame, wild_forward, wild_backward) == 0.0


@pytest.mark.parametrize("frames", [0, 1])
def test_fewer_than_two_frames(frames):
    clip = [smooth_texture()] * frames
    assert per_pair_errors(clip, clip).shape == (0,)
    assert warping_error(clip, clip) == 0.0


def test_length_mismatch_and_missing_inputs_raise():
    clip = translating_clip(3)
    for output, input_ in ((clip, clip[:2]), (clip[:2], clip), (clip[:1], []), ([], clip[:1])):
        with pytest.raises(ValueError, match="differ in length"):
            warping_error(output, input_)
    flows = list(consecutive_flows(clip, "medium"))
    with pytest.raises(ValueError, match="differ in length"):
        warping_errors(({"output": frame} for frame in clip), flows[:1])
    with pytest.raises(ValueError, match="differ in length"):
        warping_errors(({"output": frame} for frame in clip[:2]), flows)


def test_streams_hold_at_most_two_frames_each():
    clip = translating_clip(6)
    live = {"input": 0, "output": 0}
    peak = {"input": 0, "output": 0}

    def counted(name, source):
        def release(key=name):
            live[key] -= 1

        for frame in source:
            fresh = frame.copy()
            live[name] += 1
            peak[name] = max(peak[name], live[name])
            weakref.finalize(fresh, release)
            yield fresh
            del fresh

    output = counted("output", with_brightness_flicker(clip))
    errors = warping_errors(({"output": frame} for frame in output), consecutive_flows(counted("input", clip), "medium"))["output"]
    assert errors.shape == (5,)
    assert peak["input"] <= 2 and peak["output"] <= 2
    live.update(input=0, output=0)
    peak.update(input=0, output=0)
    warping_error(counted("output", with_brightness_flicker(clip)), counted("input", clip))
    assert peak["input"] <= 2 and peak["output"] <= 2


# --------------------------------------------------------------------------- PSNR, sharpness


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, np.full_like(a, 255)) == pytest.approx(0.0)
    assert psnr(a, np.full_like(a, 1)) == pytest.approx(20 * math.log10(255))  # 48.13 dB
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 * 48 / 256))
    with pytest.raises(ValueError):
        psnr(a, a[:2])


def test_sharpness_definition_and_blur_ratio():
    flat = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    assert sharpness(flat) == 0.0
    ramp = np.repeat(np.repeat((np.arange(WIDTH) * 2).astype(np.uint8)[None, :, None], HEIGHT, 0), 3, 2)
    assert sharpness(ramp) == pytest.approx(2.0)  # luma rises 2 levels per pixel along x
    gray_ramp = np.repeat((np.arange(HEIGHT) * 3.0)[:, None], WIDTH, 1)
    assert sharpness(gray_ramp) == pytest.approx(3.0)

    rng = np.random.default_rng(0)
    sharp = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), smooth_texture()]
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in sharp]
    assert sharpness_ratio(map(sharpness, blurred), map(sharpness, sharp)) < 1.0
    assert sharpness_ratio(map(sharpness, sharp), map(sharpness, sharp)) == pytest.approx(1.0)
    assert sharpness_ratio([sharpness(flat)], [sharpness(flat)]) == 1.0
    assert sharpness_ratio([1.0], [0.0]) == math.inf
    # A ratio of means: a nearly flat frame cannot dominate.
    assert sharpness_ratio([1.0, 9.0], [0.1, 9.9]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sharpness_ratio(map(sharpness, sharp), map(sharpness, sharp[:1]))
    with pytest.raises(ValueError):
        sharpness_ratio([], [])


# --------------------------------------------------------------------------- synthetic flicker


def test_synthetic_flicker_is_shared_within_windows_and_differs_across():
    static = [smooth_texture()] * 6
    flickered = list(synthetic_flicker(static, window=3, strength=1.0, seed=7))
    assert all(f.dtype == np.uint8 and f.shape == static[0].shape for f in flickered)
    assert np.array_equal(flickered[0], flickered[1]) and np.array_equal(flickered[1], flickered[2])
    assert np.array_equal(flickered[3], flickered[5])
    assert not np.array_equal(flickered[2], flickered[3])
    assert not np.array_equal(flickered[0], static[0])

    # Same content at two positions of one window gets the same flicker on a moving clip too.
    a, b = smooth_texture(), smooth_texture(3.0, 1.0)
    moving = list(synthetic_flicker([a, b, a, b], window=3, strength=1.0, seed=7))
    assert np.array_equal(moving[0], moving[2])
    assert not np.array_equal(moving[1], moving[3])

    per_frame = list(synthetic_flicker(static[:3], window=1, strength=1.0, seed=7))
    assert not np.array_equal(per_frame[0], per_frame[1])


def test_synthetic_flicker_is_deterministic_and_additive():
    clip = translating_clip(4)
    first = list(synthetic_flicker(clip, window=2, strength=0.8, seed=3))
    again = list(synthetic_flicker(iter(clip), window=2, strength=0.8, seed=3))
    other = list(synthetic_flicker(clip, window=2, strength=0.8, seed=4))
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))
    assert all(np.array_equal(x, y) for x, y in zip(synthetic_flicker(clip, 2, 0.0, 3), clip))

    gain, offset = flicker_field((HEIGHT, WIDTH), 1, 0.8, 3)  # window 1 = frames 2, 3
    expected = np.clip(np.rint(clip[2] * gain + offset), 0, 255).astype(np.uint8)
    assert np.array_equal(first[2], expected)


def test_synthetic_flicker_raises_warping_error_and_lowers_psnr():
    clip = translating_clip(5)
    flickered = list(synthetic_flicker(clip, window=1, strength=1.0, seed=0))
    assert warping_error(flickered, clip) > 10 * warping_error(clip, clip)
    assert psnr(flickered[0], clip[0]) < 40.0


def test_synthetic_flicker_rejects_bad_window():
    with pytest.raises(ValueError):
        list(synthetic_flicker([smooth_texture()], window=0))
