"""Tests for restyle.blend: pass selection, Lab histogram blend, exact Poisson fusion."""

import cv2
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from pathlib import Path

from restyle.blend import (blend_passes, choose_backward_mask, histogram_blend,
                           poisson_fusion, solve_screened_poisson)
from restyle.preflight import schema_defaults

SIZE = (48, 64)
# The workflow's gradient weights (L, a, b), from the config schema.
GRAD_WEIGHT = schema_defaults(Path(__file__).parents[1])["blend"]["grad_weight"]


def textured(seed, size=SIZE, contrast=2.0, tint=(0, 0, 0)):
    """Smooth random texture around mid-gray, far enough from 0/255 to avoid clipping."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, size + (3,)).astype(np.float32), (0, 0), 1.5)
    image = (noise - noise.mean()) * contrast + 128 + np.asarray(tint, np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


LAB_SCALE = np.array([255 / 100, 1, 1])
LAB_OFFSET = np.array([0, 128, 128])


def lab(image):
    """Float Lab scaled to OpenCV's 8-bit ranges, as the blend works in."""
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2Lab).astype(np.float64) * LAB_SCALE + LAB_OFFSET


def from_lab(planes):
    rgb = cv2.cvtColor(((planes - LAB_OFFSET) / LAB_SCALE).astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def max_abs_diff(a, b):
    return np.abs(a.astype(np.int64) - b.astype(np.int64)).max()


# --------------------------------------------------------------------------------------
# solve_screened_poisson
# --------------------------------------------------------------------------------------

def forward_difference(n):
    """(n, n) forward difference with a zero last row: no difference past the border."""
    d = scipy.sparse.diags([-np.ones(n), np.ones(n - 1)], [0, 1], format="lil")
    d[n - 1, n - 1] = 0
    return d.tocsr()


def gradient_operators(height, width):
    dx = scipy.sparse.kron(scipy.sparse.identity(height), forward_difference(width), format="csr")
    dy = scipy.sparse.kron(forward_difference(height), scipy.sparse.identity(width), format="csr")
    return dx, dy


def random_problem(seed, height=9, width=13):
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 255, (height, width))
    grad_x = rng.normal(0, 20, (height, width - 1))
    grad_y = rng.normal(0, 20, (height - 1, width))
    return data, grad_x, grad_y


def padded(grad_x, grad_y):
    """Gradients as full (H, W) images, zero where the operator rows are zero."""
    gx = np.pad(grad_x, ((0, 0), (0, 1)))
    gy = np.pad(grad_y, ((0, 1), (0, 0)))
    return gx.ravel(), gy.ravel()


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_solver_is_exact_solution_of_normal_equations(dtype, rtol):
    data, grad_x, grad_y = random_problem(0)
    weight = 1.7
    dx, dy = gradient_operators(*data.shape)
    gx, gy = padded(grad_x, grad_y)
    normal = weight ** 2 * (dx.T @ dx + dy.T @ dy) + scipy.sparse.identity(data.size)
    rhs = weight ** 2 * (dx.T @ gx + dy.T @ gy) + data.ravel()
    expected = scipy.sparse.linalg.spsolve(normal.tocsc(), rhs).reshape(data.shape)

    solution = solve_screened_poisson(data.astype(dtype), grad_x.astype(dtype),
                                      grad_y.astype(dtype), weight)

    assert solution.dtype == dtype and solution.shape == data.shape
    np.testing.assert_allclose(solution, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_solver_matches_least_squares_of_stacked_system():
    # The formulation Rerender hands to lsqr: [w Dx; w Dy; I] x ~ [w gx; w gy; data].
    data, grad_x, grad_y = random_problem(1)
    weight = 2.5
    dx, dy = gradient_operators(*data.shape)
    gx, gy = padded(grad_x, grad_y)
    stacked = scipy.sparse.vstack([weight * dx, weight * dy, scipy.sparse.identity(data.size)])
    target = np.concatenate([weight * gx, weight * gy, data.ravel()])
    expected = scipy.sparse.linalg.lsqr(stacked, target, atol=1e-14, btol=1e-14,
                                        iter_lim=10_000)[0].reshape(data.shape)

    solution = solve_screened_poisson(data, grad_x, grad_y, weight)

    np.testing.assert_allclose(solution, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_solver_returns_image_whose_gradients_it_was_given():
    data = np.random.default_rng(2).uniform(0, 255, (20, 30))
    solution = solve_screened_poisson(data, np.diff(data, axis=1), np.diff(data, axis=0), 3.0)
    np.testing.assert_allclose(solution, data, atol=1e-3)


def test_solver_with_zero_weight_returns_data():
    data, grad_x, grad_y = random_problem(3)
    np.testing.assert_allclose(solve_screened_poisson(data, grad_x, grad_y, 0.0), data, atol=1e-3)


def test_solver_rejects_full_size_gradients_with_a_clear_message():
    data, _, grad_y = random_problem(4)
    with pytest.raises(ValueError, match=r"grad_x must have shape \(9, 12\)"):
        solve_screened_poisson(data, np.zeros_like(data), grad_y, 1.0)


# --------------------------------------------------------------------------------------
# poisson_fusion
# --------------------------------------------------------------------------------------

def half_mask(size=SIZE):
    mask = np.zeros(size, bool)
    mask[:, size[1] // 2:] = True
    return mask


def test_poisson_fusion_changes_nothing_when_all_inputs_agree():
    image = textured(5, contrast=4.0)
    mask = np.random.default_rng(5).random(SIZE) > 0.5

    fused = poisson_fusion(image, image, image, mask, GRAD_WEIGHT)

    assert fused.dtype == np.uint8 and fused.shape == image.shape
    # The solver itself adds nothing; only 8-bit Lab storage costs anything.
    assert max_abs_diff(fused, image) <= 1


def test_poisson_fusion_takes_backward_structure_inside_mask():
    forward, backward = textured(6, contrast=3.0), textured(7, contrast=3.0)
    blended = ((forward.astype(np.uint16) + backward) // 2).astype(np.uint8)
    mask = half_mask()

    fused_l = lab(poisson_fusion(blended, forward, backward, mask, GRAD_WEIGHT))[..., 0]

    inside = (slice(4, -4), slice(SIZE[1] // 2 + 4, -4))  # away from the seam and border
    def correlation(image):
        gradient_x = np.diff(image, axis=1)[inside]
        return np.corrcoef(np.diff(fused_l, axis=1)[inside].ravel(), gradient_x.ravel())[0, 1]
    assert correlation(lab(backward)[..., 0]) > 0.9
    assert abs(correlation(lab(forward)[..., 0])) < 0.3


def test_poisson_fusion_hides_seam_between_differently_tinted_passes():
    forward = textured(8, contrast=1.0)
    backward = np.clip(forward.astype(np.int16) + 30, 0, 255).astype(np.uint8)  # brighter
    mask = half_mask()
    min_error = np.where(mask[..., None], backward, forward)  # a hard 30-level seam

    fused_l = lab(poisson_fusion(min_error, forward, backward, mask, GRAD_WEIGHT))[..., 0]
    seam_l = lab(min_error)[..., 0]

    seam = SIZE[1] // 2 - 1
    step_before = np.abs(seam_l[:, seam + 1] - seam_l[:, seam]).mean()
    step_after = np.abs(fused_l[:, seam + 1] - fused_l[:, seam]).mean()
    assert step_after < 0.4 * step_before


def test_poisson_fusion_rejects_wrong_mask_size():
    image = textured(9)
    with pytest.raises(ValueError, match=r"mask must have shape \(48, 64\)"):
        poisson_fusion(image, image, image, np.zeros((48, 63), bool), GRAD_WEIGHT)


def test_poisson_fusion_rejects_wrong_grad_weight():
    image = textured(9)
    with pytest.raises(ValueError, match="grad_weight must be 3 finite numbers"):
        poisson_fusion(image, image, image, half_mask(), grad_weight=(2.5, 0.5))


# --------------------------------------------------------------------------------------
# histogram_blend
# --------------------------------------------------------------------------------------

def test_histogram_blend_takes_reference_lab_statistics():
    forward = textured(10, contrast=2.0, tint=(10, -5, 0))
    backward = textured(11, contrast=1.2, tint=(-10, 5, 15))
    reference = textured(12, contrast=1.6, tint=(5, 0, -10))

    blended = histogram_blend(forward, backward, reference, 0.3)

    assert blended.dtype == np.uint8 and blended.shape == reference.shape
    out, ref = lab(blended), lab(reference)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), ref.mean(axis=(0, 1)), atol=1.5)
    np.testing.assert_allclose(out.std(axis=(0, 1)), ref.std(axis=(0, 1)), atol=1.5)


def rerender_histogram_blend(a, b, min_error, weight1, weight2):
    """Rerender-A-Video's formula, transcribed literally (RGB in place of BGR)."""
    def transform(x, mean, std, target_mean, target_std):
        return (x - mean) * target_std / std + target_mean
    a, b, m = lab(a), lab(b), lab(min_error)
    t_mean, t_std = 0.5 * 256, 256 / 36
    a = transform(a, a.mean((0, 1)), a.std((0, 1)), t_mean, t_std)
    b = transform(b, b.mean((0, 1)), b.std((0, 1)), t_mean, t_std)
    ab = (a * weight1 + b * weight2 - t_mean) / 0.5 + t_mean
    ab = transform(ab, ab.mean((0, 1)), ab.std((0, 1)), m.mean((0, 1)), m.std((0, 1)))
    return from_lab(ab)


def test_histogram_blend_equals_rerender_formula_with_its_re_expansion():
    # The re-expansion "/ 0.5" and the mean-128 / std-256/36 targets cancel in the final
    # re-keying, so leaving them out must not change the result beyond float rounding.
    forward, backward = textured(13, contrast=2.5), textured(14, contrast=1.5, tint=(0, 10, 0))
    reference = np.where(half_mask()[..., None], backward, forward)

    ours = histogram_blend(forward, backward, reference, 0.7)
    theirs = rerender_histogram_blend(forward, backward, reference, 0.7, 0.3)

    assert max_abs_diff(ours, theirs) <= 1


def test_histogram_blend_with_full_forward_weight_ignores_backward():
    forward, reference = textured(15), textured(16)
    first = histogram_blend(forward, textured(17), reference, 1.0)
    second = histogram_blend(forward, textured(18, contrast=0.5), reference, 1.0)
    np.testing.assert_array_equal(first, second)


@pytest.mark.filterwarnings("error")
def test_histogram_blend_survives_flat_images():
    gray = np.full(SIZE + (3,), 100, np.uint8)
    reference = textured(19)

    blended = histogram_blend(gray, gray, reference, 0.5)

    # Nothing to blend but a flat image: the result is flat at the reference's mean color.
    assert np.ptp(lab(blended), axis=(0, 1)).max() == 0
    np.testing.assert_allclose(lab(blended)[0, 0], lab(reference).mean((0, 1)), atol=1.5)


def test_histogram_blend_rejects_mismatched_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match=r"backward has shape \(48, 60, 3\) but forward has "
                                         r"shape \(48, 64, 3\)"):
        histogram_blend(textured(20), textured(21, size=(48, 60)), textured(22), 0.5)


def test_histogram_blend_rejects_float_images():
    with pytest.raises(ValueError, match="reference must be uint8, got float64"):
        histogram_blend(textured(20), textured(21), textured(22).astype(float), 0.5)


def test_histogram_blend_rejects_weight_outside_unit_interval():
    image = textured(23)
    with pytest.raises(ValueError, match="weight_forward must lie in"):
        histogram_blend(image, image, image, 1.5)


# --------------------------------------------------------------------------------------
# choose_backward_mask
# --------------------------------------------------------------------------------------

def test_equal_errors_go_to_the_nearer_keyframe():
    error = np.full((4, 5), 2.0)
    assert not choose_backward_mask(error, error, 3, 7).any()
    assert choose_backward_mask(error, error, 7, 3).all()


def test_error_is_scaled_by_distance_travelled():
    # Halfway through, the forward pass is chosen exactly where it is the better one;
    # near the left keyframe it survives being 3x worse, but not 5x worse.
    error_forward = np.array([[1.0, 3.0, 5.0]])
    error_backward = np.ones((1, 3))
    np.testing.assert_array_equal(choose_backward_mask(error_forward, error_backward, 5, 5),
                                  [[True, True, True]])  # ties go backward, as in Rerender
    np.testing.assert_array_equal(choose_backward_mask(error_forward, error_backward, 1, 4),
                                  [[False, False, True]])


def test_keyframes_take_their_own_pass_whatever_the_error():
    huge, tiny = np.full((3, 3), 1e6), np.full((3, 3), 1e-6)
    assert not choose_backward_mask(huge, tiny, 0, 10).any()
    assert choose_backward_mask(tiny, huge, 10, 0).all()


def test_carried_mask_keeps_pixels_on_backward_pass():
    error_forward, error_backward = np.zeros((3, 4)), np.ones((3, 4))  # forward wins everywhere
    carried = np.zeros((3, 4), np.uint8)  # as warped with nearest-neighbour by the caller
    carried[1, 2] = 1

    mask = choose_backward_mask(error_forward, error_backward, 2, 8, carried_mask=carried)

    assert mask.dtype == bool and mask.shape == (3, 4)
    assert mask[1, 2] and mask.sum() == 1


def test_choose_backward_mask_rejects_bad_inputs():
    error = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"error_backward must have shape \(3, 4\)"):
        choose_backward_mask(error, np.ones((4, 3)), 1, 1)
    with pytest.raises(ValueError, match=r"carried_mask must have shape \(3, 4\)"):
        choose_backward_mask(error, error, 1, 1, carried_mask=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match="both 0"):
        choose_backward_mask(error, error, 0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        choose_backward_mask(error, error, -1, 3)


# --------------------------------------------------------------------------------------
# blend_passes
# --------------------------------------------------------------------------------------

def test_blend_passes_returns_frame_and_the_mask_it_used():
    forward, backward = textured(24), textured(25)
    rng = np.random.default_rng(24)
    error_forward, error_backward = rng.random(SIZE), rng.random(SIZE)

    frame, mask = blend_passes(forward, backward, error_forward, error_backward, 4, 6, grad_weight=GRAD_WEIGHT)

    assert frame.dtype == np.uint8 and frame.shape == forward.shape
    assert mask.dtype == bool and mask.shape == SIZE
    np.testing.assert_array_equal(mask, choose_backward_mask(error_forward, error_backward, 4, 6))


def test_blend_passes_lets_identical_passes_through():
    image = textured(26, contrast=3.0)
    errors = np.random.default_rng(26).random((2,) + SIZE)

    frame, _ = blend_passes(image, image, errors[0], errors[1], 3, 7, grad_weight=GRAD_WEIGHT)

    assert max_abs_diff(frame, image) <= 1


def test_blend_passes_follows_the_nearer_keyframe():
    forward, backward = textured(27, contrast=3.0), textured(28, contrast=3.0)
    error = np.ones(SIZE)

    frame, mask = blend_passes(forward, backward, error, error, 1, 9, grad_weight=GRAD_WEIGHT)

    assert not mask.any()
    frame_l, forward_l, backward_l = (lab(x)[..., 0].ravel() for x in (frame, forward, backward))
    assert np.corrcoef(frame_l, forward_l)[0, 1] > 0.95
    assert np.corrcoef(frame_l, backward_l)[0, 1] < 0.5


def test_blend_passes_rejects_error_map_of_wrong_size():
    image = textured(29)
    with pytest.raises(ValueError, match=r"error_forward must have shape \(48, 64\)"):
        blend_passes(image, image, np.ones((48, 63)), np.ones(SIZE), 1, 1, grad_weight=GRAD_WEIGHT)
