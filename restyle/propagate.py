"""Propagating a stylized keyframe through a gap by following the motion.

Two methods: guided patch synthesis (:func:`propagate_by_patches`, EbSynth-style, the
default) rebuilds every frame from the keyframe's own brush strokes; flow warping
(:func:`propagate_frame`) is the fast preview.

Flow warping: every frame samples the stylized keyframe *once*, at the position
its positional guide points to.  Chaining warps (each frame resampled from the previous
output) would blur a little more at every step; sampling through the composed mapping keeps
the keyframe's brush strokes as sharp at the end of the gap as at its start.

Each propagated frame comes with a per-pixel error map: how badly the *input* frame is
predicted by the same mapping applied to the *input* keyframe (the colour-guide error of
guided synthesis, averaged over a patch).  Where the mapping is wrong (disocclusions,
flow failures, lighting changes) the error is high, so the blend can prefer the other pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from restyle.flow import remap, sampling_grid, warp
from restyle.guides import coordinate_image, fill_holes


def propagate_frame(styled_keyframe: np.ndarray, keyframe: np.ndarray, frame: np.ndarray,
                    position: np.ndarray, patch_size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Stylize ``frame`` by sampling ``styled_keyframe`` where ``position`` points.

    Parameters
    ----------
    styled_keyframe : uint8 (H, W, 3)
        The keyframe's stylized look.
    keyframe : uint8 (H, W, 3)
        The keyframe's input frame (colour guide of the source).
    frame : uint8 (H, W, 3)
        The input frame to stylize (colour guide of the target).
    position : float32 (H, W, 2)
        Positional guide: for each pixel of ``frame``, its ``(x, y)`` in the keyframe.
    patch_size : int
        Side of the window the error is averaged over.

    Returns
    -------
    styled : uint8 (H, W, 3)
    error : float32 (H, W), mean squared colour-guide error per pixel, colours in [0, 1]
    """
    for name, image in (("styled_keyframe", styled_keyframe), ("keyframe", keyframe), ("frame", frame)):
        if image.shape[:2] != position.shape[:2]:
            raise ValueError(f"{name} is {image.shape[:2]} but the positional guide is {position.shape[:2]}")
    map_x, map_y = position[..., 0], position[..., 1]
    styled = remap(styled_keyframe, map_x, map_y)
    predicted = remap(keyframe, map_x, map_y).astype(np.float32)
    residual = ((predicted - frame.astype(np.float32)) / 255.0) ** 2
    error = cv2.blur(residual.mean(axis=2), (patch_size, patch_size))
    return styled, error.astype(np.float32)


GUIDE_NAMES = ("color", "edge", "positional", "temporal")
# How a synthesized frame is read out of its matches (see :func:`propagate_by_patches`).
PATCH_OUTPUTS = ("subpixel", "nearest", "vote")


@dataclass(frozen=True)
class ChainStep:
    """What guided synthesis needs of one frame of a gap, in propagation order.

    ``flow_to_previous`` maps this frame to the previous frame of the chain and
    ``occluded`` marks its pixels that have no match there.
    """

    frame: np.ndarray
    edge: np.ndarray
    position: np.ndarray
    flow_to_previous: np.ndarray
    occluded: np.ndarray


def positional_image(position: np.ndarray, height: int, width: int) -> np.ndarray:
    """Keyframe coordinates as a guide in 0..255 units: column -> first, row -> second channel."""
    scale = np.array([255.0 / max(width - 1, 1), 255.0 / max(height - 1, 1)], np.float32)
    return position.astype(np.float32) * scale


def propagate_by_patches(styled_keyframe: np.ndarray, keyframe: np.ndarray, keyframe_edge: np.ndarray,
                         steps: Iterable[ChainStep], *, guide_weights: dict[str, float], patch_size: int,
                         uniformity: float, search_vote_iters: int, patchmatch_iters: int, seed: int,
                         output: str, coherence: float,
                         threads: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Carry a keyframe's look through a gap with guided patch synthesis (EbSynth-style).

    Every frame is synthesized from patches of the stylized keyframe, matched through four
    guides: colour (the frames), edge (their Laplacian), positional (the keyframe coordinates
    carried along the flow) and temporal (the previous synthesized frame warped along the
    flow, its source side being the stylized keyframe itself).  The nearest-neighbour field
    starts from the positional guide on the first frame and from the previous frame's field
    moved along the flow afterwards, so a few iterations per frame suffice.

    Parameters
    ----------
    styled_keyframe, keyframe, keyframe_edge : ndarray (H, W, 3)
        The source: its stylized look, the frame itself and its edge guide.
    steps : iterable of ChainStep
        The frames to synthesize, in propagation order.
    guide_weights, patch_size, uniformity, search_vote_iters, patchmatch_iters, seed, output, coherence
        The ``propagation`` section of the workflow's config (its schema documents each and
        holds the defaults): ``guide_weights`` weighs each of :data:`GUIDE_NAMES`; ``output``
        is one of :data:`PATCH_OUTPUTS`; the rest go to :func:`restyle.synthesis.synthesize`.
    threads : int, optional
        Engine threads (numba's default without it).

    Yields
    ------
    (styled, error) for each step: uint8 (H, W, 3) and float32 (H, W) patch error.

    References
    ----------
    Jamriska et al., "Stylizing Video by Example", SIGGRAPH 2019, doi:10.1145/3306346.3323006.
    """
    from restyle.synthesis import synthesize

    if output not in PATCH_OUTPUTS:
        raise ValueError(f"output must be one of {PATCH_OUTPUTS}, got {output!r}")
    weights = dict(guide_weights)
    if set(weights) != set(GUIDE_NAMES):
        unknown, missing = sorted(set(weights) - set(GUIDE_NAMES)), sorted(set(GUIDE_NAMES) - set(weights))
        raise ValueError(f"guide_weights needs a weight for each of {GUIDE_NAMES}"
                         + (f"; unknown guide(s) {unknown}" if unknown else "")
                         + (f"; missing {missing}" if missing else ""))
    height, width = keyframe.shape[:2]
    source_guides = [keyframe, keyframe_edge, positional_image(coordinate_image(height, width), height, width),
                     styled_keyframe]
    previous_styled, previous_matches = styled_keyframe, None
    for step in steps:
        temporal = fill_holes(warp(previous_styled, step.flow_to_previous), step.occluded)
        # Where each pixel's patch would come from if it just followed the motion: the
        # positional guide on the first frame, the previous frame's matches moved along the
        # flow afterwards.  Sub-pixel, so that a match that follows the motion is read at its
        # exact position rather than snapped to the pixel grid (snapping makes still content
        # shimmer as it moves).
        followed = step.position if previous_matches is None else advect_positions(previous_matches,
                                                                                   step.flow_to_previous)
        initial = np.empty(followed.shape, np.int32)
        initial[..., 0] = np.clip(np.rint(followed[..., 0]), 0, width - 1)
        initial[..., 1] = np.clip(np.rint(followed[..., 1]), 0, height - 1)
        target_guides = [step.frame, step.edge, positional_image(step.position, height, width), temporal]
        result = synthesize(styled_keyframe, source_guides, target_guides, [weights[g] for g in GUIDE_NAMES],
                            patch_size=patch_size, uniformity=uniformity, search_vote_iters=search_vote_iters,
                            patchmatch_iters=patchmatch_iters, seed=seed, initial_nnf=initial, threads=threads,
                            output="vote" if output == "vote" else "nearest", coherence=coherence)
        kept = np.all(result.nnf == initial, axis=-1)
        matches = np.where(kept[..., None], followed, result.nnf.astype(np.float32))
        image = result.image
        if output == "subpixel":
            image = remap(styled_keyframe, matches[..., 0], matches[..., 1], "cubic")
        previous_styled, previous_matches = image, matches
        yield image, result.error


def advect_positions(positions: np.ndarray, flow_to_previous: np.ndarray) -> np.ndarray:
    """Move a field of source positions from the previous frame to this one, sub-pixel.

    Each pixel takes the position of the previous frame's pixel nearest to where the flow
    says it was, plus the flow's fractional remainder: exact for content that moves as a
    whole, and never blending positions across a motion boundary (as bilinear sampling of the
    field would).

    Parameters
    ----------
    positions : float32 (H, W, 2)
        ``(x, y)`` source positions of the previous frame's pixels.
    flow_to_previous : float32 (H, W, 2)
        Flow from this frame to the previous one.
    """
    map_x, map_y = sampling_grid(flow_to_previous)
    return carry_positions(positions, map_x, map_y)


def carry_positions(positions: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """:func:`advect_positions` given where each pixel was, ``(map_x, map_y)`` (absolute
    sub-pixel coordinates in the previous frame), rather than the flow there."""
    height, width = positions.shape[:2]
    near_x = np.clip(np.rint(map_x), 0, width - 1)
    near_y = np.clip(np.rint(map_y), 0, height - 1)
    # One flat gather (3x faster than indexing by two arrays); the fractions are exact either way.
    moved = np.take(positions.reshape(-1, 2), near_y.astype(np.int32) * width + near_x.astype(np.int32), axis=0)
    moved[..., 0] += map_x - near_x
    moved[..., 1] += map_y - near_y
    return moved
