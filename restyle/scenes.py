"""Shot-cut detection with PySceneDetect's detectors, run on frames we already decoded.

Feeding the extracted frames (rather than re-opening the video) keeps cut indices in the
same numbering as every other artifact, including for variable-frame-rate sources that
were resampled to a constant rate on extraction.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

DETECTORS = ("content", "adaptive")

# PySceneDetect's own auto-downscaling aims at about this width; detection quality does
# not need more and its cost grows with pixels.
DETECTION_WIDTH = 256


def make_detector(method: str, threshold: float, min_scene_len: int):
    """A PySceneDetect detector: ``content`` (HSV delta threshold) or ``adaptive``."""
    if method == "content":
        return ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    if method == "adaptive":
        return AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=min_scene_len)
    raise ValueError(f"unknown scene detector {method!r}; use one of {DETECTORS}")


def detect_cuts(frames: Iterable[np.ndarray], fps: float, method: str = "content",
                threshold: float = 27.0, min_scene_len: int = 8) -> list[int]:
    """Frame numbers where a new scene starts (never 0).

    Parameters
    ----------
    frames : iterable of uint8 (H, W, 3) RGB frames, in order
    fps : float
        Frame rate; PySceneDetect expresses positions as timecodes.
    method : {"content", "adaptive"}
    threshold : float
        ``content``: HSV-delta threshold (PySceneDetect default 27);
        ``adaptive``: ratio to the rolling average (default 3).
    min_scene_len : int
        Minimum scene length in frames.
    """
    detector = make_detector(method, threshold, min_scene_len)
    cuts: list[int] = []
    last = None
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        if width > DETECTION_WIDTH:
            size = (DETECTION_WIDTH, max(1, round(height * DETECTION_WIDTH / width)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        last = FrameTimecode(index, fps=fps)
        # PySceneDetect's detectors read frames in OpenCV's BGR order.
        bgr = np.ascontiguousarray(frame[..., ::-1])
        cuts.extend(tc.frame_num for tc in detector.process_frame(last, bgr))
    if last is not None:
        cuts.extend(tc.frame_num for tc in detector.post_process(last))
    return sorted({c for c in cuts if c > 0})
