from pathlib import Path

import cv2
import numpy as np
import pytest

from restyle.flow import compute_flow, occlusion_mask, warp
from restyle.guides import coordinate_image, edge_guide, fill_holes, positional_guides
from restyle.preflight import schema_defaults
from restyle.propagate import propagate_frame

# The workflow's propagation settings, from the config schema (the one home of defaults).
PATCH_SETTINGS = {k: v for k, v in schema_defaults(Path(__file__).parents[1])["propagation"].items()
                  if k != "method"}


def texture(seed=0, shape=(64, 80)):
    rng = np.random.default_rng(seed)
    noise = rng.random(shape + (3,)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 4 * 255 - 400, 0, 255).astype(np.uint8)


def shifted(image, dx, dy):
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_flow_count_is_frames_minus_one_and_recovers_a_translation():
    big = texture(1, (96, 120))
    frames = [shifted(big, 1.5 * t, 0.5 * t)[16:80, 20:100] for t in range(5)]
    flows = [compute_flow(a, b) for a, b in zip(frames, frames[1:])]
    assert len(flows) == len(frames) - 1
    inner = flows[0][10:-10, 10:-10]
    np.testing.assert_allclose(np.median(inner[..., 0]), 1.5, atol=0.15)
    np.testing.assert_allclose(np.median(inner[..., 1]), 0.5, atol=0.15)


def test_occlusion_mask_flags_uncovered_border_only():
    big = texture(2, (96, 120))
    a, b = big[16:80, 20:100], big[16:80, 24:104]  # camera pans right: content moves 4 px left
    forward, backward = compute_flow(a, b), compute_flow(b, a)
    occluded = occlusion_mask(forward, backward)
    assert occluded[:, :3].mean() > 0.9          # these leave the frame
    assert occluded[:, -3:].mean() < 0.2         # these are still visible in b
    assert occluded[:, 10:-10].mean() < 0.05


def test_edge_guide_is_the_laplacian():
    flat = np.full((20, 20, 3), 90, np.uint8)
    assert edge_guide(flat).max() == 0
    dot = flat.copy()
    dot[10, 10] = 200
    assert edge_guide(dot)[10, 10, 0] == 255  # 4 * 110 saturates
    assert edge_guide(dot)[10, 11, 0] == 0    # negative response clipped


def test_fill_holes_keeps_known_pixels_and_fills_smoothly():
    ramp = coordinate_image(40, 50)
    holes = np.zeros((40, 50), bool)
    holes[10:25, 15:35] = True
    damaged = ramp.copy()
    damaged[holes] = -1000
    filled = fill_holes(damaged, holes)
    np.testing.assert_array_equal(filled[~holes], ramp[~holes])
    # Inside the hole the values lie between the surrounding known values.
    assert filled[holes][..., 0].min() >= 13 and filled[holes][..., 0].max() <= 36
    assert np.abs(filled[holes] - ramp[holes]).mean() < 3


def test_fill_holes_rejects_wrong_mask_shape():
    with pytest.raises(ValueError, match="does not match"):
        fill_holes(np.zeros((4, 5)), np.zeros((5, 4), bool))


def test_positional_guides_follow_a_translation_and_reproduce_the_moved_style():
    big = texture(3, (120, 150))
    frames = [shifted(big, -2.0 * t, -1.0 * t)[20:100, 25:125] for t in range(4)]
    to_previous = [compute_flow(b, a) for a, b in zip(frames, frames[1:])]
    to_next = [compute_flow(a, b) for a, b in zip(frames, frames[1:])]
    occlusions = [occlusion_mask(back, fwd) for back, fwd in zip(to_previous, to_next)]
    guides = list(positional_guides(to_previous, occlusions))
    assert len(guides) == 3
    grid = coordinate_image(80, 100)
    last = guides[-1]
    # Frame 3 pixel (x, y) shows keyframe pixel (x + 6, y + 3).
    np.testing.assert_allclose(np.median((last - grid)[15:-15, 15:-15], axis=(0, 1)), [6.0, 3.0], atol=0.3)

    styled_key = 255 - frames[0]  # any deterministic "look"
    styled, error = propagate_frame(styled_key, frames[0], frames[3], last)
    expected = 255 - frames[3]
    inner = (slice(15, -15), slice(15, -15))
    assert np.abs(styled[inner].astype(int) - expected[inner]).mean() < 4
    assert error[inner].mean() < error.max()
    assert error.dtype == np.float32 and error.shape == (80, 100)


def test_propagate_frame_reports_high_error_where_the_input_changed():
    frame = texture(4)
    position = coordinate_image(*frame.shape[:2])
    changed = frame.copy()
    changed[20:40, 20:40] = 255 - changed[20:40, 20:40]
    _, error = propagate_frame(frame, frame, changed, position)
    assert error[25:35, 25:35].mean() > 20 * error[:, 50:].mean() + 1e-3


def test_propagate_frame_rejects_mismatched_guide():
    frame = texture(5)
    with pytest.raises(ValueError, match="positional guide"):
        propagate_frame(frame, frame, frame, coordinate_image(10, 10))


def test_warp_with_zero_flow_is_identity():
    frame = texture(6)
    np.testing.assert_array_equal(warp(frame, np.zeros(frame.shape[:2] + (2,), np.float32)), frame)


def test_patch_propagation_follows_the_motion_and_is_deterministic():
    from restyle.propagate import ChainStep, propagate_by_patches

    big = texture(7, (120, 150))
    frames = [shifted(big, -1.5 * t, -0.5 * t)[20:84, 25:105] for t in range(4)]
    styled_key = 255 - frames[0]
    to_previous = [compute_flow(b, a) for a, b in zip(frames, frames[1:])]
    to_next = [compute_flow(a, b) for a, b in zip(frames, frames[1:])]
    occlusions = [occlusion_mask(back, fwd) for back, fwd in zip(to_previous, to_next)]
    positions = list(positional_guides(to_previous, occlusions))

    def run():
        steps = [ChainStep(f, edge_guide(f), p, fl, o)
                 for f, p, fl, o in zip(frames[1:], positions, to_previous, occlusions)]
        return list(propagate_by_patches(styled_key, frames[0], edge_guide(frames[0]), steps, **PATCH_SETTINGS,
                                          threads=1))

    first, second = run(), run()
    assert len(first) == 3
    for (a, ea), (b, eb) in zip(first, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ea, eb)
    inner = (slice(12, -12), slice(12, -12))
    for styled, _ in first:
        assert styled.shape == frames[0].shape and styled.dtype == np.uint8
    # The look of frame 3 is the keyframe's look moved with the content.
    assert np.abs(first[-1][0][inner].astype(int) - (255 - frames[3])[inner]).mean() < 8


def test_patch_propagation_needs_exactly_a_weight_per_guide():
    from restyle.propagate import propagate_by_patches

    frame = texture(8)
    with pytest.raises(ValueError, match=r"unknown guide\(s\) \['depth'\]"):
        list(propagate_by_patches(frame, frame, frame, [], **dict(PATCH_SETTINGS, guide_weights={
            **PATCH_SETTINGS["guide_weights"], "depth": 1.0})))
    with pytest.raises(ValueError, match=r"missing \['temporal'\]"):
        list(propagate_by_patches(frame, frame, frame, [], **dict(PATCH_SETTINGS, guide_weights={
            "color": 1.0, "edge": 1.0, "positional": 1.0})))


def test_advect_positions_moves_sub_pixel_and_keeps_the_fraction():
    from restyle.propagate import advect_positions

    grid = coordinate_image(20, 30)
    flow = np.full((20, 30, 2), 0.0, np.float32)
    flow[..., 0] = -2.3  # each pixel was 2.3 px to the left in the previous frame
    moved = advect_positions(grid, flow)
    np.testing.assert_allclose(moved[5:-5, 5:-5, 0], grid[5:-5, 5:-5, 0] - 2.3, atol=1e-5)
    np.testing.assert_allclose(moved[..., 1], grid[..., 1], atol=1e-5)
    np.testing.assert_array_equal(advect_positions(grid, np.zeros_like(flow)), grid)


@pytest.mark.parametrize("output", ["subpixel", "nearest", "vote"])
def test_patch_output_modes_all_reproduce_a_translation(output):
    from restyle.propagate import ChainStep, propagate_by_patches

    big = texture(9, (100, 130))
    frames = [shifted(big, -1.0 * t, 0.0)[18:82, 25:105] for t in range(3)]
    to_previous = [compute_flow(b, a) for a, b in zip(frames, frames[1:])]
    to_next = [compute_flow(a, b) for a, b in zip(frames, frames[1:])]
    occlusions = [occlusion_mask(back, fwd) for back, fwd in zip(to_previous, to_next)]
    steps = [ChainStep(f, edge_guide(f), p, fl, o) for f, p, fl, o in
             zip(frames[1:], positional_guides(to_previous, occlusions), to_previous, occlusions)]
    styled_key = 255 - frames[0]
    settings = dict(PATCH_SETTINGS, output=output)
    results = list(propagate_by_patches(styled_key, frames[0], edge_guide(frames[0]), steps, **settings, threads=1))
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(results[-1][0][inner].astype(int) - (255 - frames[2])[inner]).mean() < 8
    with pytest.raises(ValueError, match="output must be"):
        list(propagate_by_patches(styled_key, frames[0], edge_guide(frames[0]), steps,
                                  **dict(PATCH_SETTINGS, output="blur")))
