"""Dense optical flow (OpenCV DIS), backward warping and forward-backward occlusion checks.

A flow ``F`` from frame ``a`` to frame ``b`` is ``float32 (H, W, 2)``: pixel ``(x, y)`` of
``a`` is seen at ``(x, y) + F[y, x]`` in ``b``.  To bring an image that lives in frame ``b``
into frame ``a`` one *samples* it at ``x + F(x)`` (backward warping, :func:`warp`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Optical flow from ``frame_a`` to ``frame_b`` with OpenCV's DIS.

    Parameters
    ----------
    frame_a, frame_b : ndarray, uint8 (H, W, 3) RGB or (H, W) gray
    preset : {"ultrafast", "fast", "medium"}
        DIS speed/accuracy preset (Kroeger et al., "Fast Optical Flow using Dense Inverse
        Search", ECCV 2016, arXiv:1603.03590).  ``medium`` matches TV-L1 accuracy on real
        clips at a small fraction of its cost (BENCHMARKS.md, flow presets).

    Returns
    -------
    flow : ndarray, float32 (H, W, 2)
    """
    if frame_a.shape[:2] != frame_b.shape[:2]:
        raise ValueError(f"frames differ in size: {frame_a.shape[:2]} vs {frame_b.shape[:2]}")
    try:
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    except KeyError:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {sorted(DIS_PRESETS)}") from None
    return dis.calc(_gray(frame_a), _gray(frame_b), None)



def consecutive_flows(frames: Iterable[np.ndarray], preset: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(F, B)`` of each pair of consecutive ``frames``: ``F = flow(I_{t-1} -> I_t)`` and
    ``B = flow(I_t -> I_{t-1})``, for ``t = 1 .. T-1``.

    The one place flows between neighbouring frames are made: a gap's flows
    (``compute_flow``) and the flows E_warp is measured through (:mod:`restyle.metrics`) are
    therefore the same.  ``frames`` is consumed lazily, two at a time.
    """
    previous = None
    for current in frames:
        if previous is not None:
            yield compute_flow(previous, current, preset), compute_flow(current, previous, preset)
        previous = current

def sampling_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates ``(map_x, map_y)`` = pixel grid + ``flow``."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


def remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray | None, interpolation: str = "linear") -> np.ndarray:
    """Sample ``image`` at absolute coordinates, replicating the border outside it.

    ``map_x`` and ``map_y`` are the x and y coordinates (H, W); or ``map_x`` is both, (H, W, 2)
    float32, and ``map_y`` None (no copy of interleaved positions).
    """
    modes = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}
    if map_y is None:
        return cv2.remap(image, np.asarray(map_x, np.float32), None, modes[interpolation],
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), modes[interpolation],
                     borderMode=cv2.BORDER_REPLICATE)


def warp(image: np.ndarray, flow: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """Backward-warp ``image`` (living in frame b) into frame a using the flow a -> b.

    ``out[y, x] = image[(x, y) + flow[y, x]]``, bilinear by default.
    """
    map_x, map_y = sampling_grid(flow)
    return remap(image, map_x, map_y, interpolation)


def occlusion_mask(flow_ab: np.ndarray, flow_ba: np.ndarray, alpha: float = 0.01, beta: float = 0.5,
                   reject_outside: bool = True) -> np.ndarray:
    """Pixels of frame a that have no reliable match in frame b (forward-backward check).

    A pixel is occluded when going a -> b -> a does not come back:
    ``|F + B(x + F)|^2 > alpha (|F|^2 + |B(x + F)|^2) + beta``, or (``reject_outside``) when
    ``x + F`` leaves the frame, which propagation must treat as newly revealed content.
    The constants are the ones of the E_warp protocol (Lai et al. 2018), which itself does
    not reject pixels leaving the frame.

    Returns
    -------
    mask : ndarray, bool (H, W), True where occluded
    """
    back = warp(flow_ba, flow_ab)
    round_trip = flow_ab + back
    lhs = (round_trip ** 2).sum(-1)
    rhs = alpha * ((flow_ab ** 2).sum(-1) + (back ** 2).sum(-1)) + beta
    occluded = lhs > rhs
    if reject_outside:
        map_x, map_y = sampling_grid(flow_ab)
        h, w = flow_ab.shape[:2]
        occluded |= (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    return occluded


def motion_boundary_mask(flow: np.ndarray, alpha: float = 0.01, beta: float = 0.002) -> np.ndarray:
    """Pixels on motion boundaries: ``|dF/dx|^2 + |dF/dy|^2 > alpha |F|^2 + beta``."""
    dx = np.zeros_like(flow)
    dy = np.zeros_like(flow)
    dx[:, :-1] = flow[:, 1:] - flow[:, :-1]
    dy[:-1] = flow[1:] - flow[:-1]
    return ((dx ** 2).sum(-1) + (dy ** 2).sum(-1)) > alpha * (flow ** 2).sum(-1) + beta
