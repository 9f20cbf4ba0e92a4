"""Reading a restyled video back in frame order from the workflow's per-gap outputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from restyle.io import frame_name, read_image
from restyle.keyframes import frame_sources


def restyled_frame_paths(manifest: dict, keyframe_paths: Sequence[str], gap_dirs: Sequence[str]) -> list[Path]:
    """Paths of every output frame in order: styled keyframes and blended in-betweens.

    ``keyframe_paths`` follow ``manifest["keyframes"]``; ``gap_dirs`` follow
    ``manifest["gaps"]``, as the workflow lists them.
    """
    by_key = dict(zip(manifest["keyframes"], keyframe_paths, strict=True))
    by_gap = {g["name"]: Path(d) for g, d in zip(manifest["gaps"], gap_dirs, strict=True)}
    return [Path(by_key[t]) if gap is None else by_gap[gap] / frame_name(t)
            for t, gap in enumerate(frame_sources(manifest))]


def read_images(paths: Sequence[Path]) -> Iterator[np.ndarray]:
    for path in paths:
        yield read_image(path)
