"""propagation.method network through the workflow: a network trained per scene on its styled
keyframes renders every frame, chunk by chunk (tiny clip, a few training steps)."""

import numpy as np
import pytest

pytest.importorskip("torch")

from workflow_runs import (CUT, N_FRAMES, copy_with_painted_keyframe, one_line_error, planned_jobs,  # noqa: E402
                           snakemake, write_config)

from restyle import io, network  # noqa: E402
from restyle.video import probe_video, read_frames  # noqa: E402

# Enough to run every part of the training, not to train well: what is tested is the wiring.
QUICK_NETWORK = {"iterations": 40, "patch_size": 16, "batch_size": 4, "temporal_batch": 2, "temporal_pairs": 3}


@pytest.fixture(scope="module")
def network_render(tmp_path_factory, clip):
    workdir = tmp_path_factory.mktemp("network_run")
    write_config(workdir, clip, propagation={"method": "network"}, network=QUICK_NETWORK,
                 deflicker={"frames_per_job": 8})
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_the_network_renders_every_frame_with_keyframes_as_styled(network_render):
    out = network_render / "results" / "clip"
    assert probe_video(out / "restyled.mp4")["n_frames"] == N_FRAMES
    assert sorted(p.name for p in (out / "network").glob("*.safetensors")) == ["00000.safetensors",
                                                                               f"{CUT:05d}.safetensors"]
    _, settings = network.load(out / "network" / "00000.safetensors")
    assert settings.iterations == QUICK_NETWORK["iterations"]
    rendered = {p.name: p for p in out.glob("network_frames/*/*.png")}
    assert len(rendered) == N_FRAMES
    for keyframe in out.glob("styled_keyframes/*.png"):
        assert np.array_equal(io.read_image(rendered[keyframe.name]), io.read_image(keyframe))
    # The video is the rendered frames (lossy encoding aside).
    first = next(iter(read_frames(out / "restyled.mp4")))
    assert np.abs(first.astype(int) - io.read_image(rendered["00000.png"])).mean() < 6
    metrics = io.read_json(out / "metrics.json")
    assert metrics["fidelity"]["frames_compared"] > 0 and metrics["e_warp"]["output"] > 0


@pytest.mark.slow
def test_a_repainted_keyframe_retrains_only_its_scene(network_render, tmp_path):
    workdir = copy_with_painted_keyframe(network_render, tmp_path / "run", frame=28, like=16)
    jobs = planned_jobs(workdir)
    assert {w for r, w in jobs if r == "train_network"} == {f"video=clip, scene={CUT:05d}"}
    rendered = {w.split("chunk=")[1] for r, w in jobs if r == "network_chunk"}
    assert rendered and all(int(c[:5]) >= CUT for c in rendered)
    assert {w for r, w in jobs if r == "stylize_keyframe"} == {"video=clip, frame=00028"}


def test_a_bad_network_setting_is_a_one_line_error_before_any_job(tmp_path, clip):
    write_config(tmp_path, clip, propagation={"method": "network"}, network={"patch_size": 30})
    message = one_line_error(tmp_path)
    assert "network.patch_size" in message and "multiple of 4" in message
