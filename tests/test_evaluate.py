"""restyle.evaluate: the stability (E_warp) and fidelity report of a rendered video."""

import numpy as np
import pytest

from clips import synthetic_frames

from restyle.evaluate import evaluate_video, frames_between_stylized_keyframes
from restyle.keyframes import plan
from restyle.stylize import make_stylizer


def test_evaluate_video_scores_flicker_and_skips_the_cut():
    frames = list(synthetic_frames(10, (64, 48), cut_at=5, seed=2))
    manifest = plan(10, [5], 3)
    flicker = [np.clip(f.astype(int) + (15 if t % 2 else -15), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    steady = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t])
    flickering = evaluate_video(manifest, lambda t: flicker[t], lambda t: frames[t],
                                per_frame_stylizer=make_stylizer("builtin", look="oil"))
    assert [row["frame"] for row in steady["e_warp_per_frame"]] == [1, 2, 3, 4, 6, 7, 8, 9]
    assert steady["e_warp"]["output"] == pytest.approx(steady["e_warp"]["input"])
    assert flickering["e_warp"]["output"] > 5 * flickering["e_warp"]["input"]
    assert flickering["fidelity"]["frames_compared"] == 10 - len(manifest["keyframes"])


def test_fidelity_leaves_out_frames_propagated_from_painted_keyframes():
    frames = list(synthetic_frames(10, (64, 48), cut_at=None, seed=2))
    manifest = plan(10, [], 3)  # keyframes 0 3 6 9
    painted = {3}
    compared = frames_between_stylized_keyframes(manifest, painted)
    assert compared == {7, 8}
    stylizer = make_stylizer("builtin", look="oil")
    report = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t], per_frame_stylizer=stylizer,
                            fidelity_frames=compared)
    assert report["fidelity"]["frames_compared"] == 2
    all_painted = evaluate_video(manifest, lambda t: frames[t], lambda t: frames[t], per_frame_stylizer=stylizer,
                                 fidelity_frames=frames_between_stylized_keyframes(manifest, {0, 3, 6, 9}))
    assert "painted" in all_painted["fidelity"]["reason_absent"]
    assert "per_frame_stylization" in all_painted["e_warp"]  # the flicker it removes is still measured
