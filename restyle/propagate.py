"""Propagating a stylized keyframe through a gap by following the motion.

This is the fast method: every frame samples the stylized keyframe *once*, at the position
its positional guide points to.  Chaining warps (each frame resampled from the previous
output) would blur a little more at every step; sampling through the composed mapping keeps
the keyframe's brush strokes as sharp at the end of the gap as at its start.

Each propagated frame comes with a per-pixel error map: how badly the *input* frame is
predicted by the same mapping applied to the *input* keyframe (the colour-guide error of
guided synthesis, averaged over a patch).  Where the mapping is wrong (disocclusions,
flow failures, lighting changes) the error is high, so the blend can prefer the other pass.
"""

from __future__ import annotations

import cv2
import numpy as np

from restyle.flow import remap


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
