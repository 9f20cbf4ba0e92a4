"""Guide images that tell the synthesizer where each pixel of a frame came from.

* edge guide: a 3x3 Laplacian of the frame, so structure stays aligned;
* positional guide: the keyframe's coordinate image carried along the flow, frame by frame,
  so a pixel "remembers" which keyframe pixel it is;
* color guide: the frames themselves (nothing to compute).

Disoccluded pixels (no match in the previous frame) are filled by :func:`fill_holes`, a
push-pull pyramid fill that is linear in the pixel count.  It replaces the TELEA inpainting
with radius 30 of the reference pipeline, which costs ~1.8 CPU-s per call and only ever had
to produce smooth filler for smooth maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from restyle.flow import warp

LAPLACIAN_KERNEL = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32)


def edge_guide(frame: np.ndarray) -> np.ndarray:
    """3x3 Laplacian of ``frame``, negative responses clipped to 0 (as EbSynth users do)."""
    return cv2.filter2D(frame, -1, LAPLACIAN_KERNEL)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """``float32 (H, W, 2)``: each pixel holds its own ``(x, y)``."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


def fill_holes(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill ``holes`` of ``image`` smoothly from the known pixels around them (push-pull).

    Known pixels are averaged down a pyramid with their weights (push), then every level
    takes its own normalised value where it has data and the coarser level's value where it
    has none (pull).  Known pixels are returned unchanged.

    Parameters
    ----------
    image : ndarray (H, W) or (H, W, C), any float or integer dtype
    holes : ndarray of bool (H, W), True where ``image`` has no valid data

    Returns
    -------
    filled : ndarray, same shape and dtype as ``image``
    """
    if holes.shape != image.shape[:2]:
        raise ValueError(f"holes mask {holes.shape} does not match image {image.shape[:2]}")
    if not holes.any():
        return image.copy()
    if holes.all():
        return image.copy()
    known = (~holes).astype(np.float32)
    values = image.astype(np.float32) * (known if image.ndim == 2 else known[..., None])
    pyramid = [(values, known)]
    while min(pyramid[-1][1].shape) > 1 and pyramid[-1][1].min() <= 0:
        v, w = pyramid[-1]
        size = (max(1, (w.shape[1] + 1) // 2), max(1, (w.shape[0] + 1) // 2))
        pyramid.append((cv2.resize(v, size, interpolation=cv2.INTER_AREA),
                        cv2.resize(w, size, interpolation=cv2.INTER_AREA)))

    def normalised(v, w):
        safe = np.maximum(w, 1e-6)
        return v / (safe if v.ndim == 2 else safe[..., None])

    filled = normalised(*pyramid[-1])
    for v, w in reversed(pyramid[:-1]):
        up = cv2.resize(filled, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = np.clip(w, 0.0, 1.0)
        if v.ndim == 3:
            alpha = alpha[..., None]
        filled = alpha * normalised(v, w) + (1 - alpha) * up
    out = np.where(holes if image.ndim == 2 else holes[..., None], filled, image.astype(np.float32))
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def positional_guides(flows_to_previous: Iterable[np.ndarray],
                      occlusions: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Carry the keyframe's coordinate image along a chain of frames.

    Frame 0 of the chain is the keyframe.  For each following frame ``t`` the caller gives
    the flow from ``t`` to the previous frame of the chain and the mask of pixels of ``t``
    occluded in that previous frame.  Each yielded guide holds, per pixel, the ``(x, y)``
    position in the keyframe it corresponds to; occluded pixels are filled from around.

    Yields
    ------
    guide : float32 (H, W, 2), one per frame after the keyframe
    """
    position = None
    for flow, occluded in zip(flows_to_previous, occlusions):
        if position is None:
            position = coordinate_image(*flow.shape[:2])
        position = fill_holes(warp(position, flow), occluded)
        yield position
