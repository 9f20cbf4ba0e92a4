"""Tests for restyle.network: the few-shot stylizer trained on keyframes, on small generated
clips (96x64), trained through the real code and saved and loaded as safetensors."""

import numpy as np
import pytest

pytest.importorskip("torch")

from clips import synthetic_frames  # noqa: E402

from workflow_runs import REPO  # noqa: E402

from restyle import network, preflight  # noqa: E402
from restyle.flow import consecutive_flows  # noqa: E402
from restyle.metrics import psnr, warping_errors  # noqa: E402
from restyle.preflight import schema_defaults  # noqa: E402
from restyle.stylize import BuiltinStylizer  # noqa: E402

WATERCOLOR = BuiltinStylizer("watercolor")
# The workflow's settings (the schema's defaults), made small and quick: a few hundred steps
# on 32x32 patches is what 96x64 frames need.
DEFAULTS = preflight.network_settings(schema_defaults(REPO))
QUICK = dict(patch_size=32, batch_size=8, learning_rate=2e-3)


def settings_with(**changes) -> network.NetworkSettings:
    return network.NetworkSettings(**{**DEFAULTS, **QUICK, **changes})


@pytest.fixture(scope="module")
def scene():
    """Frames of one 12-frame shot (a pan and a blob crossing it) and their watercolor."""
    frames = list(synthetic_frames(12, cut_at=None))
    return frames, [WATERCOLOR(f, t) for t, f in enumerate(frames)]


def train_on_first(scene, **changes):
    frames, styled = scene
    settings = settings_with(**changes)
    model, report = network.train([frames[0]], [styled[0]], frames, settings, threads=2)
    return model, settings, report


@pytest.fixture(scope="module")
def trained(scene):
    return train_on_first(scene, iterations=300, temporal_loss="none")


def mean_e_warp(frames, flows):
    per_pair = warping_errors(({"v": f} for f in frames), flows)
    return float(np.mean(per_pair["v"]))


def test_trained_on_one_keyframe_it_paints_that_keyframe_and_a_shifted_copy_of_it(scene, trained):
    frames, styled = scene
    model, settings, _ = trained
    assert psnr(network.stylize_frame(model, frames[0], settings.guides), styled[0]) >= 30.0
    shifted = np.ascontiguousarray(frames[0][3:, 5:])
    assert psnr(network.stylize_frame(model, shifted, settings.guides), WATERCOLOR(shifted, 0)) >= 30.0


def test_it_paints_frames_it_was_not_trained_on_closer_to_the_look_than_the_frames_are(scene, trained):
    frames, styled = scene
    model, settings, _ = trained
    for t in (5, 11):
        out = network.stylize_frame(model, frames[t], settings.guides)
        assert psnr(out, styled[t]) >= psnr(frames[t], styled[t]) + 8.0


def test_the_flow_temporal_loss_lowers_e_warp_at_about_the_same_fidelity(scene, trained):
    frames, styled = scene
    flows = list(consecutive_flows(frames, "medium"))
    plain_model, settings, _ = trained
    steady_model, steady_settings, report = train_on_first(scene, iterations=300, temporal_loss="flow",
                                                           temporal_weight=30.0)
    assert report.losses["temporal"] > 0
    plain = [network.stylize_frame(plain_model, f, settings.guides) for f in frames]
    steady = [network.stylize_frame(steady_model, f, steady_settings.guides) for f in frames]
    assert mean_e_warp(steady, flows) <= 0.8 * mean_e_warp(plain, flows)
    fidelity = [np.mean([psnr(a, b) for a, b in zip(out[1:], styled[1:])]) for out in (plain, steady)]
    assert fidelity[1] >= fidelity[0] - 0.5


def test_training_is_deterministic_for_any_thread_count(scene):
    frames, styled = scene
    settings = settings_with(iterations=15, temporal_loss="flow", temporal_pairs=3)
    outputs = []
    for threads in (1, 2, 2):
        model, _ = network.train([frames[0]], [styled[0]], frames, settings, threads=threads)
        outputs.append(network.stylize_frame(model, frames[4], settings.guides, threads=threads))
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:])


def test_a_saved_network_loads_back_and_paints_the_same_bytes(tmp_path, scene, trained):
    frames, _ = scene
    model, settings, report = trained
    path = tmp_path / "network.safetensors"
    network.save(path, model, settings, report)
    loaded, loaded_settings = network.load(path)
    assert loaded_settings == settings
    assert np.array_equal(network.stylize_frame(loaded, frames[3], settings.guides),
                          network.stylize_frame(model, frames[3], settings.guides))
    assert not list(tmp_path.glob(".*"))  # written atomically: no staging file left


def test_a_file_that_is_not_a_saved_network_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "network.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match=r"network\.safetensors.*delete it to train again") as error:
        network.load(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("changes, message", [
    ({"temporal_loss": "optical"}, "unknown temporal_loss 'optical'"),
    ({"patch_size": 30}, "patch_size must be a multiple of 4"),
    ({"normalisation": "batch"}, "unknown normalisation 'batch'"),
    ({"guides": ("depth",)}, r"unknown network guide\(s\) \['depth'\]"),
    ({"iterations": 0}, "iterations must be >= 1"),
])
def test_bad_settings_are_one_line_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        settings_with(**changes)


def test_frames_smaller_than_the_training_crops_are_a_one_line_error_saying_what_to_lower(scene):
    frames, styled = scene
    small = [np.ascontiguousarray(f[:40, :40]) for f in frames[:3]]
    with pytest.raises(ValueError, match="smaller than the network's training crops.*patch_size"):
        network.train(small[:1], [np.ascontiguousarray(styled[0][:40, :40])], small,
                      settings_with(patch_size=32, temporal_loss="flow"))
