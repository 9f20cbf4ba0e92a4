"""Chunks of a video for deflickering and per-frame stylization: which frames one job makes,
which frames it reads, and which gaps' outputs those come from.

A *chunk* is up to ``frames_per_job`` consecutive frames of one scene (chunks never cross a
cut); its *context* is its frames plus ``window`` frames each side, clipped to the scene:
what a windowed deflicker (:func:`restyle.deflicker.patch_blend`) of the chunk reads, so that
chunked output equals whole-scene output.  On a restyled video the context's frames come from
the styled keyframes and the gaps' blends (:func:`restyle.keyframes.frame_sources`);
:func:`context_sources` names them, so a repainted keyframe re-runs only the chunks whose
context touches it or its gaps.
"""

from __future__ import annotations

from collections.abc import Sequence

from restyle.keyframes import gap_name, scene_ranges


def chunk_name(start: int, end: int) -> str:
    """Name of the chunk of frames ``start..end - 1`` (inclusive numbers, as gap names)."""
    return gap_name(start, end - 1)


def parse_chunk_name(name: str) -> tuple[int, int]:
    """``(start, end)``, half-open, of a chunk name."""
    first, last = name.split("-")
    return int(first), int(last) + 1


def plan(n_frames: int, cuts: Sequence[int], frames_per_job: int) -> dict:
    """The chunks of a video as a JSON-ready dict (the workflow's ``chunks.json``).

    Every scene (:func:`restyle.keyframes.scene_ranges`) is split into chunks of
    ``frames_per_job`` frames, the last one of a scene shorter.  Each chunk is
    ``{"name", "start", "end" (exclusive), "scene": index}``.
    """
    if frames_per_job < 1:
        raise ValueError(f"frames_per_job must be >= 1, got {frames_per_job}")
    scenes = scene_ranges(list(cuts), n_frames)
    chunks = []
    for index, (first, last) in enumerate(scenes):
        for start in range(first, last, frames_per_job):
            end = min(start + frames_per_job, last)
            chunks.append({"name": chunk_name(start, end), "start": start, "end": end, "scene": index})
    return {"n_frames": n_frames, "frames_per_job": frames_per_job, "scenes": [list(s) for s in scenes],
            "chunks": chunks}


def plan_for_restyled(manifest: dict, frames_per_job: int) -> dict:
    """:func:`plan` of a restyled video from its keyframe plan (:func:`restyle.keyframes.plan`),
    whose keyframes and gaps it keeps: what a chunk reads is then known from this one plan."""
    cuts = [start for start, _ in manifest["scenes"][1:]]
    return dict(plan(manifest["n_frames"], cuts, frames_per_job), keyframes=manifest["keyframes"],
                gaps=manifest["gaps"])


def find_chunk(chunk_plan: dict, name: str) -> dict:
    """The chunk called ``name`` of ``chunk_plan``."""
    start, _ = parse_chunk_name(name)
    for chunk in chunk_plan["chunks"]:
        if chunk["start"] == start and chunk["name"] == name:
            return chunk
    raise KeyError(f"no chunk {name} in the chunk plan")


def context(chunk_plan: dict, chunk: dict, window: int) -> tuple[int, int]:
    """Half-open frame range a chunk reads: its frames ``± window``, clipped to its scene."""
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    first, last = chunk_plan["scenes"][chunk["scene"]]
    return max(first, chunk["start"] - window), min(last, chunk["end"] + window)


def chunks_covering(chunk_plan: dict, start: int, end: int) -> list[dict]:
    """The chunks that hold any of frames ``start..end - 1``, in order."""
    return [c for c in chunk_plan["chunks"] if c["start"] < end and start < c["end"]]


def chunk_of_frame(chunk_plan: dict) -> list[str]:
    """For every frame of the video, the name of the chunk holding it."""
    names = [""] * chunk_plan["n_frames"]
    for chunk in chunk_plan["chunks"]:
        names[chunk["start"]:chunk["end"]] = [chunk["name"]] * (chunk["end"] - chunk["start"])
    return names


def context_sources(frame_sources: Sequence[str | None], start: int, end: int) -> tuple[list[int], list[str]]:
    """(keyframes, gap names) whose outputs frames ``start..end - 1`` of a restyled video come
    from, in order; ``frame_sources`` is :func:`restyle.keyframes.frame_sources` of its plan
    (None for a keyframe)."""
    keys, gaps = [], []
    for t in range(start, end):
        source = frame_sources[t]
        if source is None:
            keys.append(t)
        elif not gaps or gaps[-1] != source:
            gaps.append(source)
    return keys, gaps


def measured_range(chunk_plan: dict, chunk: dict) -> tuple[int, int]:
    """Half-open frame range whose consecutive pairs a chunk's measurement scores: its own
    frames and the frame before it when that lies in the same scene, so the chunks of a video
    together score every pair of every scene exactly once."""
    first, _ = chunk_plan["scenes"][chunk["scene"]]
    return max(first, chunk["start"] - 1), chunk["end"]
