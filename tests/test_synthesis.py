import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numba
import numpy as np
import pytest

from restyle.guides import coordinate_image
from restyle.synthesis import patch_features, patchmatch, pyramid_depth, synthesize, vote

H, W = 48, 64


def texture(seed=0, shape=(H, W)):
    rng = np.random.default_rng(seed)
    noise = rng.random(shape + (3,)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 4 * 255 - 400, 0, 255).astype(np.uint8)


def stylize(frame):
    """A deterministic 'style' that is not the frame itself: posterised, recoloured."""
    return (255 - (frame // 32) * 32)[..., ::-1].copy()


def positions(height, width, dx=0, dy=0):
    """Positional guide in 0..255 units: each pixel holds its (x, y) shifted by (dx, dy)."""
    return (coordinate_image(height, width) + np.float32([dx, dy])) * np.float32(255.0 / max(height, width))


def translated_case(dx=5, dy=3):
    """Source = window of a big texture at (0, 0), target = window at (dx, dy)."""
    big = texture(1, (H + dy, W + dx))
    source, target = big[:H, :W], big[dy:, dx:]
    style_big = stylize(big)
    guides = dict(source_guides=[source, positions(H, W)], target_guides=[target, positions(H, W, dx, dy)],
                  guide_weights=[6.0, 2.0])
    return style_big[:H, :W], style_big[dy:, dx:], guides


def identity_nnf(height, width):
    return np.dstack(np.meshgrid(np.arange(width), np.arange(height))).astype(np.int32)


def test_synthesizing_a_frame_from_itself_returns_it():
    frame = texture(0)
    style = stylize(frame)
    result = synthesize(style, [frame], [frame], [1.0])
    assert result.image.dtype == np.uint8 and result.image.shape == style.shape
    assert result.error.dtype == np.float32 and result.error.shape == (H, W)
    assert result.nnf.dtype == np.int32 and result.nnf.shape == (H, W, 2)
    assert np.abs(result.image.astype(int) - style).mean() < 0.2
    assert np.abs(result.image.astype(int) - style).max() <= 2
    assert np.median(result.error) < 1e-3 and result.error.mean() < 0.5
    assert (result.nnf == identity_nnf(H, W)).all(-1).mean() > 0.98


def test_translated_target_with_positional_guide_reproduces_translated_style():
    style, expected, guides = translated_case(5, 3)
    result = synthesize(style, **guides)
    inner = np.abs(result.image.astype(int) - expected)[6:-6, 6:-10]  # right edge: newly revealed
    assert inner.mean() < 1.0
    # The field is the translation itself in the interior.
    shift = result.nnf[6:-6, 6:-10] - identity_nnf(H, W)[6:-6, 6:-10]
    assert (shift == [5, 3]).all(-1).mean() > 0.95


def test_uniformity_spreads_source_usage():
    # The target guide is a flat grey that only one small source region matches exactly; the
    # rest of the source is a little off.  Without uniformity every target patch picks that
    # region; with it, the over-used region costs more than the small guide mismatch.
    rng = np.random.default_rng(3)
    source_guide = np.full((H, W), 136, np.float32)
    source_guide[20:28, 28:36] = 128
    target_guide = np.full((H, W), 128, np.float32)
    style = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    usage = {}
    for lam in (0.0, 3500.0):
        nnf = synthesize(style, [source_guide], [target_guide], [1.0], style_weight=0.0, uniformity=lam).nnf
        counts = np.bincount((nnf[..., 1] * W + nnf[..., 0]).ravel(), minlength=H * W)
        usage[lam] = (np.count_nonzero(counts), counts.max())
    distinct_off, max_off = usage[0.0]
    distinct_on, max_on = usage[3500.0]
    assert distinct_off <= 16  # the 4x4 centres whose patch lies inside the region
    assert distinct_on > 10 * distinct_off
    assert max_on * 3 < max_off


def threads_case():
    """A 96x128 target (6x8 wavefront tiles, up to 6 side by side) with the pyramid, the
    uniformity term and a warm-started coherent level: every parallel kernel has work for
    several threads."""
    big = texture(1, (99, 134))
    source, target = big[:96, :128], big[3:, 6:]
    kwargs = dict(source_guides=[source, positions(96, 128)], target_guides=[target, positions(96, 128, 6, 3)],
                  guide_weights=[6.0, 2.0], search_vote_iters=2, patchmatch_iters=2, seed=7)
    return stylize(source), kwargs


def threads_results(threads=None):
    """Bytes of the from-scratch and of the warm-started synthesis of :func:`threads_case`."""
    style, kwargs = threads_case()
    scratch = synthesize(style, **kwargs, threads=threads)
    warm = synthesize(style, **kwargs, initial_nnf=scratch.nnf, coherence=150.0, threads=threads)
    return [r.tobytes() for result in (scratch, warm) for r in (result.image, result.nnf, result.error)]


# Run in a process of its own, whose numba pool has 4 threads whatever the machine's cores.
_IN_FOUR_THREADS = f"""
import pickle, sys, numba
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_synthesis import threads_results
sys.stdout.buffer.write(pickle.dumps((numba.get_num_threads(), threads_results())))
"""


def test_same_seed_same_bytes_for_any_thread_count():
    single = threads_results(threads=1)
    # Even on one core: 4 threads split every parallel loop, so a result that depended on
    # how the work is split (a parallel float reduction, a wavefront tile reading a tile
    # that runs beside it) would differ from the single-threaded one.
    child = subprocess.run([sys.executable, "-c", _IN_FOUR_THREADS], capture_output=True, check=True,
                           env=dict(os.environ, NUMBA_NUM_THREADS="4"))
    threads, parallel = pickle.loads(child.stdout)
    assert threads == 4
    assert parallel == single
    # The threads= argument of a call gives the same bytes too.
    assert threads_results(threads=numba.config.NUMBA_NUM_THREADS) == single
    style, kwargs = threads_case()
    other = synthesize(style, **dict(kwargs, seed=8), threads=1)
    assert other.nnf.tobytes() != single[1]


def test_source_and_target_sizes_may_differ():
    frame = texture(4, (H, W))
    small = cv2.resize(frame, (40, 30), interpolation=cv2.INTER_AREA)
    result = synthesize(stylize(frame), [frame], [small], [1.0], search_vote_iters=2, patchmatch_iters=2)
    assert result.image.shape == (30, 40, 3) and result.error.shape == (30, 40)
    assert result.nnf[..., 0].max() < W and result.nnf[..., 1].max() < H and result.nnf.min() >= 0


@pytest.mark.parametrize("source_guides, target_guides, weights, match", [
    ([np.zeros((H, W))], [np.zeros((H, W)), np.zeros((H, W))], [1.0], r"1 source guides, 2 target guides, 1 weights"),
    ([np.zeros((H, W))], [np.zeros((H, W))], [1.0, 2.0], r"1 source guides, 1 target guides, 2 weights"),
    ([np.zeros((H, W)), np.zeros((H, W + 1, 3))], [np.zeros((H, W)), np.zeros((H, W, 3))], [1.0, 1.0],
     r"guide 1: source guide is \(48, 65, 3\) but the style is \(48, 64, 3\)"),
    ([np.zeros((H, W)), np.zeros((H, W, 3))], [np.zeros((H, W)), np.zeros((H, W, 2))], [1.0, 1.0],
     r"guide 1: source \(48, 64, 3\) and target \(48, 64, 2\) have different channel counts"),
    ([np.zeros((H, W)), np.zeros((H, W))], [np.zeros((40, 50)), np.zeros((40, 51))], [1.0, 1.0],
     r"guide 1: target guide is \(40, 51\) but target guide 0 is \(40, 50\)"),
    ([np.zeros((H, W))], [np.zeros((H, W))], [-1.0], r"guide 0: weight must be finite and >= 0"),
])
def test_bad_guides_raise_naming_the_guide(source_guides, target_guides, weights, match):
    with pytest.raises(ValueError, match=match):
        synthesize(np.zeros((H, W, 3), np.uint8), source_guides, target_guides, weights)


def test_bad_style_patch_size_and_initial_nnf_raise():
    g = [np.zeros((H, W))]
    with pytest.raises(ValueError, match="style must be uint8"):
        synthesize(np.zeros((H, W, 3), np.float32), g, g, [1.0])
    with pytest.raises(ValueError, match="patch_size must be odd"):
        synthesize(np.zeros((H, W, 3), np.uint8), g, g, [1.0], patch_size=4)
    with pytest.raises(ValueError, match=r"initial_nnf is int32 \(48, 63, 2\), expected integer \(48, 64, 2\)"):
        synthesize(np.zeros((H, W, 3), np.uint8), g, g, [1.0], initial_nnf=np.zeros((H, W - 1, 2), np.int32))


def test_initial_nnf_needs_fewer_iterations_than_a_random_start():
    dx, dy = 5, 3
    style, expected, guides = translated_case(dx, dy)
    colour_only = dict(source_guides=guides["source_guides"][:1], target_guides=guides["target_guides"][:1],
                       guide_weights=[1.0])
    true_nnf = np.minimum(identity_nnf(H, W) + [dx, dy], [W - 1, H - 1]).astype(np.int32)
    inner = (slice(6, -6), slice(6, -10))  # away from the borders and the newly revealed columns

    def quality(result):
        return result.error[inner].mean(), np.abs(result.image.astype(int) - expected)[inner].mean()

    # From the true field, one iteration is already as good as it gets ...
    warm_error, warm_diff = quality(synthesize(style, **colour_only, search_vote_iters=1, patchmatch_iters=1,
                                               initial_nnf=true_nnf))
    assert warm_error < 1.0 and warm_diff < 0.1
    # ... while a random start at the same level still has far to go after it
    cold_error, cold_diff = quality(synthesize(style, **colour_only, search_vote_iters=1, patchmatch_iters=1,
                                               pyramid_levels=1))
    assert cold_error > 50 * max(warm_error, 1.0) and cold_diff > 2.0
    # and needs several to catch up.
    later_error, _ = quality(synthesize(style, **colour_only, search_vote_iters=4, patchmatch_iters=4,
                                        pyramid_levels=1))
    assert later_error < 1.0
    # With no iterations at all the result is the vote of the given field.
    still = synthesize(style, **dict(guides, search_vote_iters=0), initial_nnf=true_nnf)
    assert (still.nnf == true_nnf).all()
    assert np.abs(still.image.astype(int) - expected)[inner].mean() < 0.1


def test_pyramid_depth_matches_ebsynth():
    assert pyramid_depth(512, 512, 5) == 6
    assert pyramid_depth(H, W, 5) == 3  # 48, 24, 12 >= 11
    assert pyramid_depth(8, 8, 5) == 1


def test_coherence_keeps_the_initial_matches_unless_another_is_much_better():
    rng = np.random.default_rng(11)
    image = cv2.GaussianBlur((rng.random((40, 48, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    # A deliberately wrong start: every pixel points one pixel to the right.
    start = np.dstack(np.meshgrid(np.arange(48), np.arange(40))).astype(np.int32)
    start[..., 0] = np.clip(start[..., 0] + 1, 0, 47)
    common = dict(search_vote_iters=1, patchmatch_iters=1, initial_nnf=start, threads=1, uniformity=0.0)
    free = synthesize(image, [image], [image], [1.0], **common)
    sticky = synthesize(image, [image], [image], [1.0], coherence=1e6, **common)
    assert np.mean(np.all(free.nnf == start, axis=-1)) < 0.9
    assert free.error.mean() < sticky.error.mean()
    np.testing.assert_array_equal(sticky.nnf, start)
    with pytest.raises(ValueError, match="coherence"):
        synthesize(image, [image], [image], [1.0], coherence=-1.0, **common)


def test_patchmatch_searches_only_the_active_pixels():
    """Outside ``active`` a pixel keeps its starting match (and has no energy); inside, the
    search finds the true shift of a textured image."""
    rng = np.random.default_rng(3)
    target = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3)).astype(np.uint8), (0, 0), 1.0)
    source = np.roll(target, (2, 3), axis=(0, 1))  # target(x, y) = source(x + 3, y + 2)
    identity = np.stack(np.meshgrid(np.arange(64), np.arange(48)), axis=-1).astype(np.int32)
    active = np.zeros((48, 64), bool)
    active[:, :32] = True
    nnf, error = patchmatch([source], [target], [1.0], initial_nnf=identity, patch_size=5, iterations=4,
                            search_radius=8, seed=0, active=active)
    np.testing.assert_array_equal(nnf[~active], identity[~active])
    assert np.isnan(error[~active]).all() and np.isfinite(error[active]).all()
    inner = (slice(4, 44), slice(4, 28))
    found = np.all(nnf[inner] == identity[inner] + [3, 2], axis=-1)
    assert found.mean() > 0.9


def test_a_vote_on_some_pixels_is_the_full_vote_there_and_leaves_the_rest():
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (40, 50, 5)).astype(np.float32)
    nnf = np.stack([rng.integers(0, 50, (30, 45)), rng.integers(0, 40, (30, 45))], axis=-1).astype(np.int16)
    where = rng.random((30, 45)) < 0.3
    where[0, 0] = where[-1, -1] = True  # corners: fewest covering patches
    out = np.full((30, 45, 5), -1.0, np.float32)
    vote(image, nnf, 5, where=where, out=out)
    np.testing.assert_allclose(out[where], vote(image, nnf, 5)[where], rtol=1e-5)
    assert (out[~where] == -1.0).all()
    with pytest.raises(ValueError, match="needs out"):
        vote(image, nnf, 5, where=where)
    by_index = np.full_like(out, -1.0)
    vote(image, nnf, 5, where=np.flatnonzero(where), out=by_index)
    np.testing.assert_array_equal(by_index, out)
    with pytest.raises(ValueError, match="indices must lie in"):
        vote(image, nnf, 5, where=np.array([30 * 45]), out=by_index)


def test_patchmatch_on_packed_features_is_patchmatch_on_the_guides():
    rng = np.random.default_rng(5)
    source = cv2.GaussianBlur(rng.integers(0, 255, (40, 56, 3)).astype(np.uint8), (0, 0), 1.0).astype(np.float32)
    target = np.roll(source, (2, 3), axis=(0, 1))
    height, width = source.shape[:2]
    identity = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).astype(np.int32)
    common = dict(initial_nnf=identity, patch_size=5, iterations=2, search_radius=8, seed=4)
    guides = ([source, source[..., 0]], [target, target[..., 0]])
    plain = patchmatch(*guides, [3.0, 1.0], **common)
    packed = patchmatch(patch_features(guides[0], [3.0, 1.0], 5), patch_features(guides[1], [3.0, 1.0], 5),
                        [3.0, 1.0], **common)
    np.testing.assert_array_equal(plain[0], packed[0])
    np.testing.assert_array_equal(plain[1], packed[1])
    with pytest.raises(ValueError, match="packed with weights"):
        patchmatch(patch_features(guides[0], [1.0, 1.0], 5), guides[1], [3.0, 1.0], **common)
