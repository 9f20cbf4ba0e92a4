"""The numbers of a restyled video's metrics report, measured piece by piece.

E_warp (Lai et al., ECCV 2018, arXiv:1808.00449; defined in :mod:`restyle.metrics`) is
measured on every pair of consecutive frames of a scene, through the flow of the input video.
Those pairs are the pairs of the gaps (:func:`restyle.keyframes.plan`), whose flows the
workflow already has, plus the few that no gap holds: adjacent keyframes
(:func:`pairs_outside_gaps`).  :func:`measure_frames` measures one such piece, a gap right
after its blend and before its flows are deleted; :func:`report` puts the pieces together;
:func:`evaluate_video` does both for a whole video at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from restyle.flow import consecutive_flows
from restyle.metrics import psnr, sharpness, sharpness_ratio, warping_errors
from restyle.stylize import Stylizer

FrameReader = Callable[[int], np.ndarray]

#: The videos whose E_warp is reported, in the report's order (``before_deflicker``: the
#: restyled frames the deflicker stage started from).
SERIES = ("output", "before_deflicker", "input", "per_frame_stylization")


def frames_between_stylized_keyframes(manifest: dict, painted: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """The in-between frames whose both keyframes came from the stylizer (none painted): the
    frames a per-frame stylization is a fair reference for."""
    frames = set()
    for gap in manifest["gaps"]:
        if gap["start"] not in painted and gap["end"] not in painted:
            frames.update(range(gap["start"] + 1, gap["end"]))
    return frames


def reference_look(stylizer: dict) -> str | None:
    """The look of the per-frame reference (every frame stylized on its own): the builtin
    stylizer's, or None for other backends (``stylizer``: the config's section)."""
    # Stylizing every frame with diffusion only to measure would cost more than the render.
    return stylizer["look"] if stylizer["backend"] == "builtin" else None


def no_reference_reason(per_frame_reference: bool, stylizer: dict) -> str | None:
    """Why metrics.json has no per-frame reference (None when it has one)."""
    if not per_frame_reference:
        return "measure.per_frame_reference is off"
    if reference_look(stylizer) is None:
        return f"no per-frame reference for the {stylizer['backend']} stylizer (it runs on keyframes only)"
    return None


def pairs_outside_gaps(manifest: dict) -> list[list[int]]:
    """``[t - 1, t]`` for each pair of consecutive frames of a scene that no gap holds (two
    adjacent keyframes: no flow was computed between them)."""
    in_gaps = {t for gap in manifest["gaps"] for t in range(gap["start"] + 1, gap["end"] + 1)}
    return [[t - 1, t] for start, end in manifest["scenes"] for t in range(start + 1, end) if t not in in_gaps]


def measure_frames(frames: Sequence[int], restyled: FrameReader, original: FrameReader,
                   flows: Iterable[tuple[np.ndarray, np.ndarray]], per_frame_stylizer: Stylizer | None = None,
                   keyframes: Collection[int] = (), *, more: dict[str, FrameReader] | None = None,
                   reference: FrameReader | None = None) -> dict:
    """E_warp of each pair of consecutive ``frames`` and the fidelity of the other frames.

    Parameters
    ----------
    frames : sequence of int
        Consecutive frames of one scene (a gap, both keyframes included, or a pair).
    restyled, original : callable
        ``reader(t)`` returns frame ``t`` (uint8 RGB) of the output / input video.
    flows : iterable of (F, B)
        ``F = flow(I_{t-1} -> I_t)`` and ``B = flow(I_t -> I_{t-1})`` of the input for each
        ``t`` of ``frames[1:]`` (:func:`restyle.flow.consecutive_flows`, or the gap's flows).
    per_frame_stylizer : Stylizer, optional
        The per-frame reference: its E_warp is measured too, and output frames that are not
        ``keyframes`` are compared with it (PSNR, sharpness).
    keyframes : collection of int
    more : dict name -> reader, optional
        Further videos whose E_warp is measured (``before_deflicker``).
    reference : reader, optional
        What the output is compared with instead of a per-frame stylization (a deflickered
        video: its input); its own E_warp is not measured.

    Returns
    -------
    dict
        ``e_warp_per_frame``: per ``t`` of ``frames[1:]``, ``{"frame": t, "input": err_t,
        "output": err_t[, "per_frame_stylization": err_t]}``; ``fidelity_per_frame``: per
        compared frame, ``{"frame", "psnr", "sharpness", "reference_sharpness"}``.
    """
    frames = list(frames)
    fidelity: list[dict] = []

    def videos():
        for t in frames:
            current = {"input": original(t), "output": restyled(t)}
            current.update((name, read(t)) for name, read in (more or {}).items())
            compared = reference(t) if reference is not None else None
            if per_frame_stylizer is not None:
                compared = current["per_frame_stylization"] = per_frame_stylizer(current["input"], t)
            if compared is not None and t not in keyframes:
                fidelity.append({"frame": t, "psnr": psnr(current["output"], compared),
                                 "sharpness": sharpness(current["output"]),
                                 "reference_sharpness": sharpness(compared)})
            yield current

    errors = warping_errors(videos(), flows)
    rows = [{"frame": t, **{name: float(values[i]) for name, values in errors.items()}}
            for i, t in enumerate(frames[1:])]
    return {"e_warp_per_frame": rows, "fidelity_per_frame": fidelity}


def report(manifest: dict, measurements: Iterable[dict], *, has_reference: bool,
           fidelity_frames: set[int] | None = None, no_fidelity_reason: str | None = None,
           reference_name: str = "per_frame_stylization") -> dict:
    """Temporal stability, fidelity and sharpness of a video from its pieces' measurements.

    Parameters
    ----------
    manifest : dict
        The keyframe plan (:func:`restyle.keyframes.plan`).
    measurements : iterable of dict
        :func:`measure_frames` of every gap and of every pair outside the gaps.
    has_reference : bool
        Whether to report the per-frame reference; they must have been measured with one
        then.  Without, what they measured of it is left out.
    fidelity_frames : set of int, optional
        The frames fidelity is reported on (default: all compared).  Frames propagated
        from a painted keyframe have no per-frame reference: leave them out.
    no_fidelity_reason : str, optional
        Why there is no per-frame reference, reported in place of the fidelity numbers.
    reference_name : str
        What the fidelity keys say the output was compared with (``input`` for a deflickered
        video made elsewhere).

    Returns
    -------
    dict
        ``e_warp`` (the mean per video of :data:`SERIES`), ``e_warp_per_frame`` in frame
        order, ``fidelity`` (PSNR and :func:`restyle.metrics.sharpness_ratio` against the
        per-frame stylization, or the reason it is absent) and the plan's counts.
    """
    per_frame, compared = [], []
    for measurement in measurements:
        per_frame += [{k: v for k, v in row.items() if has_reference or k != "per_frame_stylization"}
                      for row in measurement["e_warp_per_frame"]]
        compared += [row for row in measurement["fidelity_per_frame"]
                     if has_reference and (fidelity_frames is None or row["frame"] in fidelity_frames)]
    per_frame.sort(key=lambda row: row["frame"])
    compared.sort(key=lambda row: row["frame"])
    series = [k for k in SERIES if per_frame and k in per_frame[0]]
    result = {
        "n_frames": manifest["n_frames"],
        "n_keyframes": len(manifest["keyframes"]),
        "n_scenes": len(manifest["scenes"]),
        "e_warp": {k: float(np.mean([row[k] for row in per_frame])) for k in series},
        "e_warp_per_frame": per_frame,
    }
    if not compared:
        if has_reference:
            no_fidelity_reason = "every in-between frame is propagated from a painted keyframe"
        result["fidelity"] = {"reason_absent": no_fidelity_reason or "no per-frame reference"}
    else:
        result["fidelity"] = {
            f"psnr_db_vs_{reference_name}": float(np.mean([row["psnr"] for row in compared])),
            f"sharpness_ratio_vs_{reference_name}": sharpness_ratio(
                [row["sharpness"] for row in compared], [row["reference_sharpness"] for row in compared]),
            "frames_compared": len(compared),
        }
    return result


def evaluate_video(manifest: dict, restyled: FrameReader, original: FrameReader,
                   per_frame_stylizer: Stylizer | None = None, flow_preset: str = "medium",
                   fidelity_frames: set[int] | None = None, no_fidelity_reason: str | None = None) -> dict:
    """Temporal stability, fidelity and sharpness of a restyled video (:func:`report`).

    E_warp is measured on the output, on the input (its floor) and, when
    ``per_frame_stylizer`` is given, on the input stylized frame by frame (the flicker
    restyle removes).  Frame pairs that straddle a scene cut are skipped: no flow relates
    them.  Fidelity (PSNR) and sharpness are measured against the per-frame stylization on
    the non-keyframes only, where propagation decided the look.

    Parameters
    ----------
    manifest, fidelity_frames, no_fidelity_reason
        As in :func:`report`.
    restyled, original, per_frame_stylizer
        As in :func:`measure_frames`.
    flow_preset : str
        DIS preset of the flow used by E_warp.
    """
    keyframes = set(manifest["keyframes"])
    pieces = [range(g["start"], g["end"] + 1) for g in manifest["gaps"]] + pairs_outside_gaps(manifest)
    measurements = [measure_frames(frames, restyled, original, consecutive_flows(map(original, frames), flow_preset),
                                   per_frame_stylizer, keyframes) for frames in pieces]
    return report(manifest, measurements, has_reference=per_frame_stylizer is not None,
                  fidelity_frames=fidelity_frames, no_fidelity_reason=no_fidelity_reason)
