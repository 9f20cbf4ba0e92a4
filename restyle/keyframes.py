"""Keyframe and gap bookkeeping: which frames get stylized, which get propagated.

Keyframes are every ``interval`` frames inside each scene, plus each scene's last frame
(plus any frame the user painted by hand).  A *gap* runs between two consecutive keyframes
of the same scene, both ends included; its in-between frames are propagated forward from
the left keyframe and backward from the right one.  Gaps never cross a scene cut, and the
last gap of the video ends at its true last frame.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gap:
    """Frames ``start..end`` (inclusive) between two keyframes of one scene (each direction's
    frame order: :func:`restyle.gap_store.chain`)."""

    start: int
    end: int
    scene: int

    @property
    def name(self) -> str:
        return gap_name(self.start, self.end)


def gap_name(start: int, end: int) -> str:
    return f"{start:05d}-{end:05d}"


def parse_gap_name(name: str) -> tuple[int, int]:
    start, end = name.split("-")
    return int(start), int(end)


def scene_ranges(cuts: list[int], n_frames: int) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` frame ranges of the scenes split at ``cuts``.

    ``cuts`` are the first frames of new scenes; values outside ``1..n_frames-1`` and
    duplicates are ignored.
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got n_frames={n_frames}")
    bounds = sorted({c for c in cuts if 0 < c < n_frames})
    starts = [0, *bounds]
    ends = [*bounds, n_frames]
    return list(zip(starts, ends))


def keyframes_for_scenes(scenes: list[tuple[int, int]], interval: int, extra: tuple[int, ...] = ()) -> list[int]:
    """Every ``interval``-th frame of each scene, each scene's last frame, and ``extra``.

    Parameters
    ----------
    scenes : list of (start, end)
        Half-open scene ranges covering the video.
    interval : int
        Distance between keyframes inside a scene (>= 1).
    extra : tuple of int
        Frames that must be keyframes too (hand-painted ones).
    """
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    keys: set[int] = set()
    for start, end in scenes:
        keys.update(range(start, end, interval))
        keys.add(end - 1)
    n_frames = scenes[-1][1] if scenes else 0
    for frame in extra:
        if not 0 <= frame < n_frames:
            raise ValueError(f"keyframe {frame} is outside the video's frames 0..{n_frames - 1}")
        keys.add(frame)
    return sorted(keys)


def gaps_between(keyframes: list[int], scenes: list[tuple[int, int]]) -> list[Gap]:
    """Gaps between consecutive keyframes that lie in the same scene and are not adjacent.

    Adjacent keyframes (``k`` and ``k + 1``) leave nothing to propagate and yield no gap.
    """
    scene_of = {}
    for index, (start, end) in enumerate(scenes):
        for key in keyframes:
            if start <= key < end:
                scene_of[key] = index
    gaps = []
    for left, right in zip(keyframes, keyframes[1:]):
        if scene_of[left] == scene_of[right] and right - left > 1:
            gaps.append(Gap(left, right, scene_of[left]))
    return gaps


def plan(n_frames: int, cuts: list[int], interval: int, extra_keyframes: tuple[int, ...] = ()) -> dict:
    """The whole keyframe plan of a video as a JSON-ready dict (the workflow's manifest)."""
    scenes = scene_ranges(cuts, n_frames)
    keys = keyframes_for_scenes(scenes, interval, tuple(extra_keyframes))
    gaps = gaps_between(keys, scenes)
    return {
        "n_frames": n_frames,
        "interval": interval,
        "scenes": [list(s) for s in scenes],
        "keyframes": keys,
        "gaps": [{"name": g.name, "start": g.start, "end": g.end, "scene": g.scene} for g in gaps],
    }


def frame_sources(manifest: dict) -> list[str | None]:
    """For every frame of the video, the gap that produced it, or None for a keyframe."""
    sources: list[str | None] = [None] * manifest["n_frames"]
    keys = set(manifest["keyframes"])
    for gap in manifest["gaps"]:
        for t in range(gap["start"] + 1, gap["end"]):
            sources[t] = gap["name"]
    missing = [t for t, s in enumerate(sources) if s is None and t not in keys]
    if missing:
        raise ValueError(f"frames {missing[:5]} are neither keyframes nor inside a gap")
    return sources


def scene_keyframes(manifest: dict, frame: int) -> list[int]:
    """The keyframes of the scene that holds ``frame``, in order."""
    start, end = next((s, e) for s, e in manifest["scenes"] if s <= frame < e)
    return [k for k in manifest["keyframes"] if start <= k < end]


def reference_keyframes(scene_keys: list[int], frame: int) -> list[int]:
    """Keyframes that keyframe ``frame`` attends to: its scene's first and previous ones.

    Empty for the scene's first keyframe; one entry for the second (first == previous).
    """
    ordered = sorted(int(k) for k in scene_keys)
    if int(frame) not in ordered:
        raise ValueError(f"frame {frame} is not one of the scene's keyframes {ordered}")
    position = ordered.index(int(frame))
    if position == 0:
        return []
    return list(dict.fromkeys([ordered[0], ordered[position - 1]]))
