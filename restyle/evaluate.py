"""One pass over a restyled video that gathers every number of its metrics report."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from restyle.flow import compute_flow
from restyle.metrics import psnr, sharpness, warping_error_pair
from restyle.stylize import Stylizer

FrameReader = Callable[[int], np.ndarray]


def frames_between_stylized_keyframes(manifest: dict, painted: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """The in-between frames whose both keyframes came from the stylizer (none painted): the
    frames a per-frame stylization is a fair reference for."""
    frames = set()
    for gap in manifest["gaps"]:
        if gap["start"] not in painted and gap["end"] not in painted:
            frames.update(range(gap["start"] + 1, gap["end"]))
    return frames


def evaluate_video(manifest: dict, restyled: FrameReader, original: FrameReader,
                   per_frame_stylizer: Stylizer | None = None, flow_preset: str = "medium",
                   fidelity_frames: set[int] | None = None, no_fidelity_reason: str | None = None) -> dict:
    """Temporal stability, fidelity and sharpness of a restyled video.

    E_warp (Lai et al., ECCV 2018, arXiv:1808.00449; defined in :mod:`restyle.metrics`) is
    measured on the output, on the input (its floor) and, when ``per_frame_stylizer`` is
    given, on the input stylized frame by frame (the flicker restyle removes).  Frame pairs
    that straddle a scene cut are skipped: no flow relates them.  Fidelity (PSNR) and
    sharpness are measured against the per-frame stylization on the non-keyframes only,
    where propagation decided the look.

    Parameters
    ----------
    manifest : dict
        The keyframe plan (``restyle.keyframes.plan``).
    restyled, original : callable
        ``reader(t)`` returns frame ``t`` (uint8 RGB) of the output / input video.
    per_frame_stylizer : Stylizer or None
    flow_preset : str
        DIS preset of the flow used by E_warp.
    fidelity_frames : set of int, optional
        The frames fidelity is measured on (default: every non-keyframe).  Frames propagated
        from a painted keyframe have no per-frame reference: leave them out.
    no_fidelity_reason : str, optional
        Why there is no per-frame reference, reported in place of the fidelity numbers.
    """
    keyframes = set(manifest["keyframes"])
    per_frame: list[dict] = []
    psnrs: list[float] = []
    sharp_out: list[float] = []
    sharp_ref: list[float] = []
    for start, end in manifest["scenes"]:
        previous = None
        for t in range(start, end):
            current = {"input": original(t), "output": restyled(t)}
            if per_frame_stylizer is not None:
                current["per_frame_stylization"] = per_frame_stylizer(current["input"], t)
                if t not in keyframes and (fidelity_frames is None or t in fidelity_frames):
                    psnrs.append(psnr(current["output"], current["per_frame_stylization"]))
                    sharp_out.append(sharpness(current["output"]))
                    sharp_ref.append(sharpness(current["per_frame_stylization"]))
            if previous is not None:
                forward = compute_flow(previous["input"], current["input"], flow_preset)
                backward = compute_flow(current["input"], previous["input"], flow_preset)
                row = {"frame": t}
                for name in current:
                    row[name] = warping_error_pair(previous[name], current[name], forward, backward)
                per_frame.append(row)
            previous = current
    series = [k for k in ("output", "input", "per_frame_stylization") if per_frame and k in per_frame[0]]
    report = {
        "n_frames": manifest["n_frames"],
        "n_keyframes": len(keyframes),
        "n_scenes": len(manifest["scenes"]),
        "e_warp": {k: float(np.mean([row[k] for row in per_frame])) for k in series},
        "e_warp_per_frame": per_frame,
    }
    if not psnrs:
        if per_frame_stylizer is not None:
            no_fidelity_reason = "every in-between frame is propagated from a painted keyframe"
        report["fidelity"] = {"reason_absent": no_fidelity_reason or "no per-frame reference"}
    else:
        report["fidelity"] = {
            "psnr_db_vs_per_frame_stylization": float(np.mean(psnrs)),
            "sharpness_ratio_vs_per_frame_stylization": float(np.mean(sharp_out) / max(np.mean(sharp_ref), 1e-12)),
            "frames_compared": len(psnrs),
        }
    return report
