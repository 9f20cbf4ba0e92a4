"""Merging the forward and backward propagation passes of a gap into one steady frame.

Every in-between frame of a gap is synthesized twice: once carried forward from the left
keyframe and once carried backward from the right one.  The two passes agree on geometry
but not on color, and each is worse the farther it travelled.  Following Rerender-A-Video
(Yang et al. 2023), the merge has three steps:

1. :func:`choose_backward_mask` picks, per pixel, the pass with the smaller
   distance-weighted synthesis error, and keeps a pixel on the backward pass once it
   switched (the caller carries the previous mask along the flow);
2. :func:`histogram_blend` averages the two passes after matching their Lab statistics and
   re-keys the average to the statistics of the min-error image;
3. :func:`poisson_fusion` takes the *gradients* of the chosen pass and the *colors* of the
   histogram blend, so the seam between the passes disappears.

:func:`blend_passes` runs the three in order.  All Lab work uses OpenCV's 8-bit Lab scaling
(L, a and b all in 0..255).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import scipy.fft

# --------------------------------------------------------------------------------------
# Input checks and Lab conversion
# --------------------------------------------------------------------------------------

def _check_images(**images: np.ndarray) -> tuple[int, int]:
    """Raise a ValueError unless every image is uint8 (H, W, 3) and all share one size."""
    first_name, first_shape = None, None
    for name, image in images.items():
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8, got {image.dtype}")
        if first_shape is None:
            first_name, first_shape = name, image.shape
        elif image.shape != first_shape:
            raise ValueError(f"{name} has shape {image.shape} but {first_name} has shape "
                             f"{first_shape}; all images must be the same size")
    return first_shape[:2]


def _check_map(name: str, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Raise a ValueError unless ``values`` is a 2-D per-pixel map of the given size."""
    values = np.asarray(values)
    if values.shape != tuple(size):
        raise ValueError(f"{name} must have shape {tuple(size)} (one value per pixel), "
                         f"got {values.shape}")
    return values


def _check_grad_weight(grad_weight) -> np.ndarray:
    weights = np.asarray(grad_weight, dtype=np.float32)
    if weights.shape != (3,) or not np.all(np.isfinite(weights)):
        raise ValueError(f"grad_weight must be 3 finite numbers (L, a, b), got {grad_weight!r}")
    return weights


# Lab is computed in float and scaled to OpenCV's 8-bit Lab ranges (L, a, b in 0..255) so
# that constants like the histogram targets keep their usual meaning; staying in float
# avoids the 8-bit Lab round trip, which alone loses up to ~19 RGB levels on saturated colours.
_LAB_SCALE = np.array([255.0 / 100.0, 1.0, 1.0], np.float32)[:, None, None]
_LAB_OFFSET = np.array([0.0, 128.0, 128.0], np.float32)[:, None, None]


def _lab_planes(image: np.ndarray) -> np.ndarray:
    """Lab of an RGB uint8 image, 8-bit scaled, as float32 planes (3, H, W).

    Channel-first so that per-channel statistics and the 2-D DCTs run on contiguous planes.
    """
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return np.stack(cv2.split(lab)) * _LAB_SCALE + _LAB_OFFSET


def _planes_to_rgb(planes: np.ndarray) -> np.ndarray:
    """Convert 8-bit-scaled float Lab planes (3, H, W) back to RGB uint8 (rounded, clipped)."""
    lab = (planes - _LAB_OFFSET) / _LAB_SCALE
    rgb = cv2.cvtColor(cv2.merge(list(lab.astype(np.float32))), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _plane_moments(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each plane of a (C, H, W) float32 array, as (C, 1, 1).

    OpenCV accumulates in float64: much faster than numpy's float32 reductions here and
    more accurate.
    """
    moments = np.array([np.ravel(cv2.meanStdDev(plane)) for plane in planes], np.float32)
    return moments[:, 0, None, None], moments[:, 1, None, None]


def _safe_std(std: np.ndarray) -> np.ndarray:
    # A flat channel has nothing to rescale; dividing by 1 leaves it flat instead of NaN.
    return np.where(std > 0, std, 1).astype(np.float32)


# --------------------------------------------------------------------------------------
# 1. Histogram blend
# --------------------------------------------------------------------------------------

def histogram_blend(forward: np.ndarray, backward: np.ndarray, reference: np.ndarray,
                    weight_forward: float) -> np.ndarray:
    """Average two passes in Lab after matching their statistics, keyed to ``reference``.

    Rerender-A-Video's "contrast-preserving" blend: per Lab channel each pass is shifted and
    scaled to a common mean and standard deviation, the two are averaged with weights
    ``weight_forward`` and ``1 - weight_forward``, and the average is shifted and scaled
    to the per-channel mean and standard deviation of ``reference``.  A plain average of
    two passes that disagree on texture loses contrast and mixes two tints; this one keeps
    the contrast and the tint of the reference.

    Parameters
    ----------
    forward, backward : ndarray, uint8 (H, W, 3) RGB
        The two propagated passes of the same frame.
    reference : ndarray, uint8 (H, W, 3) RGB
        Image whose Lab statistics the result takes, usually the min-error image.
    weight_forward : float in [0, 1]
        Weight of ``forward`` in the average; ``backward`` gets ``1 - weight_forward``.

    Returns
    -------
    blended : ndarray, uint8 (H, W, 3) RGB

    Notes
    -----
    Rerender normalizes both passes to mean 128 and std 256/36, and after averaging applies
    ``(avg - 128) / 0.5 + 128`` to re-expand the contrast that averaging loses.  All three
    constants are dropped here on purpose (passes are standardized to mean 0, std 1 and
    averaged as they are): every step is a per-channel affine map and the final re-keying
    *measures* the average's own mean and std, so any common target and any re-expansion
    factor cancel exactly (Rerender does no clipping in between).  The re-keying already
    restores the full contrast, which is what the re-expansion is for; 0.5 would anyway
    be the right factor only for identical passes at equal weights (for decorrelated
    passes, as in Heitz & Neyret's histogram-preserving blend, it is
    ``sqrt(w**2 + (1 - w)**2)``), so hard-coding it would be wrong whenever a later
    change clipped or rounded the average.  The result equals Rerender's formula up to
    float rounding (tested).
    """
    _check_images(forward=forward, backward=backward, reference=reference)
    weight_forward = float(weight_forward)
    if not 0.0 <= weight_forward <= 1.0:
        raise ValueError(f"weight_forward must lie in [0, 1], got {weight_forward}")
    blended = _histogram_blend_planes(_lab_planes(forward), _lab_planes(backward),
                                      _lab_planes(reference), weight_forward)
    return _planes_to_rgb(blended)


def _histogram_blend_planes(forward: np.ndarray, backward: np.ndarray, reference: np.ndarray,
                            weight_forward: float) -> np.ndarray:
    """:func:`histogram_blend` on float Lab planes (3, H, W); returns unrounded planes."""
    mixed = np.zeros_like(forward)
    for planes, weight in ((forward, weight_forward), (backward, 1.0 - weight_forward)):
        mean, std = _plane_moments(planes)
        # Standardizing (mean 0, std 1) is Rerender's "mean 128, std 256/36" up to an
        # affine map that the re-keying below cancels.
        mixed += np.float32(weight) * ((planes - mean) / _safe_std(std))

    mixed_mean, mixed_std = _plane_moments(mixed)
    target_mean, target_std = _plane_moments(reference)
    # Where the weighted passes cancel out exactly the average is flat: fall back to the
    # reference's mean rather than blowing rounding noise up to the reference's contrast.
    scale = np.where(mixed_std > 1e-6, target_std / _safe_std(mixed_std), 0).astype(np.float32)
    return (mixed - mixed_mean) * scale + target_mean


# --------------------------------------------------------------------------------------
# 2. Gradient-domain (screened Poisson) fusion
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _neumann_laplacian_eigenvalues(height: int, width: int, dtype: str) -> np.ndarray:
    """Eigenvalues of ``Dx^T Dx + Dy^T Dy`` on an (height, width) grid, in DCT-II order.

    The forward-difference operator with no difference past the last pixel makes the 1-D
    path-graph Laplacian, whose eigenvectors are the DCT-II basis with eigenvalues
    ``2 - 2 cos(pi k / N)``; the 2-D operator is the Kronecker sum of two of them.
    """
    along_y = 2.0 - 2.0 * np.cos(np.pi * np.arange(height) / height)
    along_x = 2.0 - 2.0 * np.cos(np.pi * np.arange(width) / width)
    grid = (along_y[:, None] + along_x[None, :]).astype(dtype)
    grid.setflags(write=False)  # shared between calls through the cache
    return grid


def _solve_screened_poisson_planes(data: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray,
                                   weights: np.ndarray) -> np.ndarray:
    """Solve ``(w_c^2 (Dx^T Dx + Dy^T Dy) + I) x_c = w_c^2 (Dx^T gx_c + Dy^T gy_c) + b_c``.

    ``data`` is (C, H, W), ``grad_x`` (C, H, W-1), ``grad_y`` (C, H-1, W), ``weights`` (C,),
    all of one float dtype.  All C planes go through a single 2-D DCT pair.
    """
    height, width = data.shape[-2:]
    weight_sq = (np.asarray(weights, dtype=data.dtype) ** 2)[:, None, None]

    # rhs = w^2 (Dx^T gx + Dy^T gy) + b; D^T of a forward difference is a backward
    # difference with the gradient taken as zero outside the image (Neumann).
    rhs = np.zeros_like(data)
    rhs[..., :, :-1] -= grad_x
    rhs[..., :, 1:] += grad_x
    rhs[..., :-1, :] -= grad_y
    rhs[..., 1:, :] += grad_y
    rhs *= weight_sq
    rhs += data

    spectrum = scipy.fft.dctn(rhs, type=2, axes=(-2, -1), norm="ortho", overwrite_x=True)
    eigenvalues = _neumann_laplacian_eigenvalues(height, width, data.dtype.str)
    spectrum /= 1 + weight_sq * eigenvalues
    return scipy.fft.idctn(spectrum, type=2, axes=(-2, -1), norm="ortho", overwrite_x=True)


def solve_screened_poisson(data: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray,
                           weight: float) -> np.ndarray:
    """The image closest to ``data`` whose gradients are closest to the given ones.

    Minimizes ``weight^2 (|Dx x - grad_x|^2 + |Dy x - grad_y|^2) + |x - data|^2`` where
    ``Dx``, ``Dy`` are forward differences (``(Dx x)[i, j] = x[i, j+1] - x[i, j]``).  The
    normal equations have constant coefficients and Neumann boundaries, so a DCT-II
    diagonalizes them and the solution is exact (no iterations, no tolerance).

    Parameters
    ----------
    data : ndarray, float (H, W)
        Data term: the values the solution stays near.
    grad_x : ndarray, float (H, W - 1)
        Target horizontal differences, e.g. ``np.diff(image, axis=1)``.
    grad_y : ndarray, float (H - 1, W)
        Target vertical differences, e.g. ``np.diff(image, axis=0)``.
    weight : float
        Weight of the gradient term relative to the data term; 0 returns ``data``.  Its
        square sets the reach of a gradient edit: about ``weight`` pixels.

    Returns
    -------
    solution : ndarray (H, W), float32 unless an input is float64
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data must be a 2-D (H, W) array, got shape {data.shape}")
    height, width = data.shape
    grad_x, grad_y = np.asarray(grad_x), np.asarray(grad_y)
    if grad_x.shape != (height, width - 1):
        raise ValueError(f"grad_x must have shape {(height, width - 1)} (forward differences "
                         f"along x of an {data.shape} image), got {grad_x.shape}")
    if grad_y.shape != (height - 1, width):
        raise ValueError(f"grad_y must have shape {(height - 1, width)} (forward differences "
                         f"along y of an {data.shape} image), got {grad_y.shape}")
    if not np.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight}")
    dtype = np.result_type(data, grad_x, grad_y, np.float32)
    solution = _solve_screened_poisson_planes(
        data.astype(dtype)[None], grad_x.astype(dtype)[None], grad_y.astype(dtype)[None],
        np.array([weight], dtype=dtype))
    return solution[0]


def poisson_fusion(blended: np.ndarray, forward: np.ndarray, backward: np.ndarray,
                   mask: np.ndarray, grad_weight) -> np.ndarray:
    """Colors of ``blended`` with the gradients of the chosen pass, seam-free.

    Per Lab channel ``c`` this solves (exactly, see :func:`solve_screened_poisson`)
    ``min_x  w_c^2 (|Dx x - gx|^2 + |Dy x - gy|^2) + |x - blended_c|^2`` where the target
    differences ``gx``, ``gy`` come from ``backward`` where ``mask`` is True and from
    ``forward`` elsewhere.  The difference between a pixel and its right/lower neighbour
    follows the mask at the pixel itself, as in Rerender-A-Video.

    Parameters
    ----------
    blended : ndarray, uint8 (H, W, 3) RGB
        Data term, usually the :func:`histogram_blend` of the two passes.
    forward, backward : ndarray, uint8 (H, W, 3) RGB
        The two propagated passes.
    mask : ndarray, bool (H, W)
        True where the backward pass is taken (nonzero counts as True).
    grad_weight : sequence of 3 floats
        Gradient weights for L, a and b.  The workflow's (``blend.grad_weight`` in its
        config schema) hold lightness, which carries the structure, to the chosen pass
        more than color, which may relax to the blend.

    Returns
    -------
    fused : ndarray, uint8 (H, W, 3) RGB

    Notes
    -----
    Rerender also clips target gradients to [-100, 100] Lab levels before its (inexact,
    ``lsqr``) solve; that clip is not reproduced: it only bites at near black/white edges,
    where it would soften real structure.

    The DCTs run on one thread, which suits one job per core; wrap the call in
    ``scipy.fft.set_workers(n)`` to use more.
    """
    size = _check_images(blended=blended, forward=forward, backward=backward)
    mask = _check_map("mask", mask, size).astype(bool, copy=False)
    weights = _check_grad_weight(grad_weight)

    return _planes_to_rgb(_poisson_fusion_planes(_lab_planes(blended), _lab_planes(forward),
                                                 _lab_planes(backward), mask, weights))


def _poisson_fusion_planes(data: np.ndarray, forward: np.ndarray, backward: np.ndarray,
                           mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`poisson_fusion` on float Lab planes (3, H, W); returns unrounded planes."""
    grad_x = np.diff(forward, axis=2)
    np.copyto(grad_x, np.diff(backward, axis=2), where=mask[:, :-1])
    grad_y = np.diff(forward, axis=1)
    np.copyto(grad_y, np.diff(backward, axis=1), where=mask[:-1, :])
    return _solve_screened_poisson_planes(data, grad_x, grad_y, weights)


# --------------------------------------------------------------------------------------
# 3. Pass selection
# --------------------------------------------------------------------------------------

def choose_backward_mask(error_forward: np.ndarray, error_backward: np.ndarray,
                         distance_forward: float, distance_backward: float,
                         carried_mask: np.ndarray | None = None) -> np.ndarray:
    """Pixels that take the backward pass: its distance-weighted error is not larger.

    Each pass's synthesis error is multiplied by how far that pass travelled from its own
    keyframe, so the pass that is farther from its keyframe must be proportionally better
    to be chosen:

        backward where  distance_forward * error_forward >= distance_backward * error_backward
        forward where   distance_forward * error_forward <  distance_backward * error_backward

    This is Rerender-A-Video's ``w1 * err_fwd < w2 * err_bwd -> forward`` with
    ``w1 = distance_forward / (distance_forward + distance_backward)`` weighting the forward
    error and ``w2 = 1 - w1`` the backward one.  (Rerender's own ``w1 = i / (interval - 1)``
    lags one frame behind the true distance; here the middle frame weighs both equally.)
    On the left keyframe (``distance_forward == 0``) every pixel takes the forward pass,
    on the right one every pixel takes the backward pass.

    Parameters
    ----------
    error_forward, error_backward : ndarray, float (H, W)
        Per-pixel synthesis error of each pass (e.g. EbSynth's error map), >= 0.
    distance_forward, distance_backward : float
        Frames from this frame to the keyframe each pass started from; >= 0, not both 0.
    carried_mask : ndarray (H, W), optional
        The previous frame's mask, already warped into this frame by the caller; nonzero
        counts as True.  It is OR-ed in, so a pixel that switched to the backward pass
        stays on it for the rest of the gap (no flicker between passes).

    Returns
    -------
    mask : ndarray, bool (H, W), True where the backward pass is taken
    """
    error_forward = np.asarray(error_forward)
    if error_forward.ndim != 2:
        raise ValueError(f"error_forward must be a 2-D (H, W) map, got shape {error_forward.shape}")
    size = error_forward.shape
    error_backward = _check_map("error_backward", error_backward, size)
    distance_forward, distance_backward = float(distance_forward), float(distance_backward)
    if not (distance_forward >= 0 and distance_backward >= 0
            and np.isfinite(distance_forward) and np.isfinite(distance_backward)):
        raise ValueError(f"distances must be finite and >= 0, got distance_forward="
                         f"{distance_forward}, distance_backward={distance_backward}")
    if distance_forward + distance_backward == 0:
        raise ValueError("distance_forward and distance_backward are both 0: a frame cannot "
                         "be both keyframes of its gap")

    mask = distance_forward * error_forward >= distance_backward * error_backward
    if carried_mask is not None:
        mask |= _check_map("carried_mask", carried_mask, size).astype(bool, copy=False)
    return mask


# --------------------------------------------------------------------------------------
# 4. The whole merge
# --------------------------------------------------------------------------------------

def blend_passes(forward: np.ndarray, backward: np.ndarray,
                 error_forward: np.ndarray, error_backward: np.ndarray,
                 distance_forward: float, distance_backward: float,
                 carried_mask: np.ndarray | None = None, *,
                 grad_weight) -> tuple[np.ndarray, np.ndarray]:
    """Merge the forward and backward passes of one in-between frame.

    Pass selection (:func:`choose_backward_mask`) -> min-error image (each pixel from the
    chosen pass) -> :func:`histogram_blend` keyed to the min-error image, with the nearer
    keyframe's pass weighing more -> :func:`poisson_fusion` with the chosen pass's
    gradients.  The intermediate images stay in float Lab, so this equals composing the
    public functions minus their intermediate rounding to 8 bits.

    Parameters
    ----------
    forward, backward : ndarray, uint8 (H, W, 3) RGB
        The pass carried from the left keyframe and the one carried from the right one.
    error_forward, error_backward : ndarray, float (H, W)
        Per-pixel synthesis error of each pass.
    distance_forward, distance_backward : float
        Frames from this frame to the left and to the right keyframe.
    carried_mask : ndarray (H, W), optional
        The previous frame's returned mask warped into this frame (see
        :func:`choose_backward_mask`).
    grad_weight : sequence of 3 floats
        Gradient weights for L, a, b in :func:`poisson_fusion`.

    Returns
    -------
    frame : ndarray, uint8 (H, W, 3) RGB
    mask : ndarray, bool (H, W)
        True where the backward pass was chosen; warp it to the next frame and pass it
        back as ``carried_mask``.
    """
    size = _check_images(forward=forward, backward=backward)
    _check_map("error_forward", error_forward, size)
    mask = choose_backward_mask(error_forward, error_backward, distance_forward,
                                distance_backward, carried_mask)
    weights = _check_grad_weight(grad_weight)

    # Stay in float Lab from start to end: going through 8-bit RGB between the two
    # blends would add a second quantization (up to several levels on saturated colors).
    forward_lab, backward_lab = _lab_planes(forward), _lab_planes(backward)
    min_error_lab = np.where(mask, backward_lab, forward_lab)
    # The nearer keyframe's pass weighs more: its weight is the *other* pass's share
    # of the distance (choose_backward_mask has checked the sum is positive).
    weight_forward = float(distance_backward) / (float(distance_forward) + float(distance_backward))
    blended_lab = _histogram_blend_planes(forward_lab, backward_lab, min_error_lab, weight_forward)
    # Clip as the standalone histogram_blend's 8-bit output would be, without its rounding.
    np.clip(blended_lab, 0, 255, out=blended_lab)
    fused_lab = _poisson_fusion_planes(blended_lab, forward_lab, backward_lab, mask, weights)
    return _planes_to_rgb(fused_lab), mask
