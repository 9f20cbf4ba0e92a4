"""A gap's files on disk: one place that knows their names, and readers of its chain.

A gap runs from a left keyframe ``start`` to a right keyframe ``end``.  It is propagated in
two directions, ``"fwd"`` (from ``start``) and ``"bwd"`` (from ``end``); in each, every frame
is linked to the one before it *in propagation order*.  Four folders hold what the stages
make of a gap:

``flow/<gap>/``
    ``flow_f_<t>.npy`` (t -> t+1) and ``flow_b_<t>.npy`` (t -> t-1), float32 (H, W, 2);
    ``occ_f_<t>.png`` / ``occ_b_<t>.png``: pixels of ``t`` without a match in t+1 / t-1.
``guides/<gap>/<direction>/``
    ``edge_<t>.png`` (edge guide) and ``pos_<t>.npy`` (positional guide: the keyframe
    coordinates carried along the flow).
``passes/<gap>/<direction>/``
    ``styled_<t>.png`` and ``error_<t>.npy``: the propagated frame and its per-pixel error.
``measured/<gap>/``
    ``measurement.json``: the gap's share of metrics.json (:func:`restyle.evaluate.measure_frames`).

A new stage reads a gap through these functions, never by spelling file names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from restyle import io

FORWARD, BACKWARD = "fwd", "bwd"
DIRECTIONS = (FORWARD, BACKWARD)

Folder = str | os.PathLike


def chain(start: int, end: int, direction: str) -> list[int]:
    """Frames of the gap in propagation order, both keyframes included (source first)."""
    if direction == FORWARD:
        return list(range(start, end + 1))
    if direction == BACKWARD:
        return list(range(end, start - 1, -1))
    raise ValueError(f"direction must be {FORWARD!r} or {BACKWARD!r}, got {direction!r}")


def inbetweens(start: int, end: int, direction: str) -> list[int]:
    """The frames a pass propagates to: the chain without its two keyframes."""
    return chain(start, end, direction)[1:-1]


def link(direction: str) -> str:
    """Which flow links a frame to the previous one of the chain: ``"b"`` (t -> t-1) going
    forward, ``"f"`` (t -> t+1) going backward."""
    return "b" if direction == FORWARD else "f"


# flow/<gap>/

def flow_path(flow: Folder, toward: str, t: int) -> Path:
    """``toward`` ``"f"``: flow of ``t`` to t+1; ``"b"``: to t-1."""
    return Path(flow) / f"flow_{toward}_{t:05d}.npy"


def occlusion_path(flow: Folder, toward: str, t: int) -> Path:
    return Path(flow) / f"occ_{toward}_{t:05d}.png"


def read_flow(flow: Folder, toward: str, t: int) -> np.ndarray:
    return io.load_array(flow_path(flow, toward, t))


def read_occlusion(flow: Folder, toward: str, t: int) -> np.ndarray:
    """Boolean (H, W): pixels of ``t`` with no match in its neighbour ``toward``."""
    return io.read_image(occlusion_path(flow, toward, t))[..., 0] > 0


def write_flow_pair(flow: Folder, t: int, forward: np.ndarray, backward: np.ndarray,
                    occluded_forward: np.ndarray, occluded_backward: np.ndarray) -> None:
    """The flows between ``t`` and ``t + 1`` (``forward``: t -> t+1, ``backward``: t+1 -> t)
    and the occlusion masks of each."""
    io.save_array(flow_path(flow, "f", t), forward)
    io.save_array(flow_path(flow, "b", t + 1), backward)
    io.write_image(occlusion_path(flow, "f", t), occluded_forward.astype(np.uint8) * 255)
    io.write_image(occlusion_path(flow, "b", t + 1), occluded_backward.astype(np.uint8) * 255)


# guides/<gap>/<direction>/

def edge_path(guides: Folder, direction: str, t: int) -> Path:
    return Path(guides) / direction / f"edge_{t:05d}.png"


def position_path(guides: Folder, direction: str, t: int) -> Path:
    return Path(guides) / direction / f"pos_{t:05d}.npy"


def read_edge(guides: Folder, direction: str, t: int) -> np.ndarray:
    return io.read_image(edge_path(guides, direction, t))


def read_position(guides: Folder, direction: str, t: int) -> np.ndarray:
    return io.load_array(position_path(guides, direction, t))


# passes/<gap>/<direction>/

def styled_path(passes: Folder, direction: str, t: int) -> Path:
    return Path(passes) / direction / f"styled_{t:05d}.png"


def error_path(passes: Folder, direction: str, t: int) -> Path:
    return Path(passes) / direction / f"error_{t:05d}.npy"


def read_pass(passes: Folder, direction: str, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(styled frame, per-pixel error) of frame ``t`` in one pass."""
    return io.read_image(styled_path(passes, direction, t)), io.load_array(error_path(passes, direction, t))


def write_pass(passes: Folder, direction: str, t: int, styled: np.ndarray, error: np.ndarray) -> None:
    io.write_image(styled_path(passes, direction, t), styled)
    io.save_array(error_path(passes, direction, t), error)


# measured/<gap>/

def measurement_path(measured: Folder) -> Path:
    return Path(measured) / "measurement.json"


# one step of a chain

def chain_links(flow: Folder, start: int, end: int, direction: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(t, flow to the previous frame of the chain, occluded)`` for each in-between frame
    of a pass, in propagation order; read lazily."""
    toward = link(direction)
    for t in inbetweens(start, end, direction):
        yield t, read_flow(flow, toward, t), read_occlusion(flow, toward, t)
