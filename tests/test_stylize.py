import numpy as np
import pytest

from restyle.stylize import LOOKS, BuiltinStylizer, keyframe_source, kuwahara, make_stylizer


def photo_like(seed=0, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, shape[1])[None, :, None] * np.ones(shape + (3,))
    return np.clip(base + rng.normal(0, 20, shape + (3,)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_every_look_changes_the_frame_keeps_its_shape_and_is_deterministic(look):
    frame = photo_like()
    stylizer = make_stylizer("builtin", look=look)
    first, second = stylizer(frame, 0), stylizer(frame.copy(), 0)
    assert first.shape == frame.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert np.abs(first.astype(int) - frame).mean() > 2


def test_kuwahara_flattens_noise_but_keeps_a_step_edge():
    step = np.zeros((40, 40, 3), np.uint8)
    step[:, 20:] = 200
    noisy = np.clip(step + np.random.default_rng(1).normal(0, 15, step.shape), 0, 255).astype(np.uint8)
    out = kuwahara(noisy, 4)
    assert out[:, 2:17].std() < noisy[:, 2:17].std() / 2
    assert out[:, 23:38].mean() - out[:, 2:17].mean() > 180


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown stylizer 'nope'"):
        make_stylizer("nope")
    with pytest.raises(ValueError, match="unknown built-in look 'vangogh'"):
        BuiltinStylizer("vangogh")
    with pytest.raises(ValueError, match="uint8"):
        BuiltinStylizer("oil")(np.zeros((4, 4), np.float32), 0)


@pytest.mark.parametrize("backend, painted, scene_batch, override, expected", [
    ("builtin", False, False, None, "stylizer"),
    ("builtin", True, False, None, "painted"),
    ("diffusion", True, True, {"seed": 1}, "painted"),  # a painting wins over everything
    ("diffusion", False, True, {"seed": 1}, "scene_batch"),  # overrides join their scene's batch
    ("diffusion", False, False, None, "base_record"),
    ("diffusion", False, False, {"seed": 1}, "override"),
])
def test_one_decision_says_how_each_keyframe_is_styled(backend, painted, scene_batch, override, expected):
    assert keyframe_source(backend, painted, scene_batch, override) == expected
