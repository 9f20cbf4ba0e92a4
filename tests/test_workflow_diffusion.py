"""The workflow with the diffusion stylizer, on a tiny random model saved to disk."""

import json
import shutil

import pytest

pytest.importorskip("diffusers")

from tiny_diffusion import save_tiny_sd  # noqa: E402
from workflow_runs import N_FRAMES, one_line_error, planned_jobs, snakemake, write_config  # noqa: E402

from restyle.video import probe_video  # noqa: E402

pytestmark = pytest.mark.slow  # whole workflow runs with a diffusion model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_sd(tmp_path_factory.mktemp("model") / "tiny-sd")


# Every keyframe is a diffusion job of its own (~10 s, mostly importing PyTorch and diffusers),
# and a scene's keyframes run one after another: the tests' clip with fewer of them.  Keyframes
# 0 10 15 | 16 26 29.
KEYFRAMES = {"interval": 10}


def diffusion_config(model, **extra):
    return {"backend": "diffusion", "model": str(model), "prompt": "an oil painting", "strength": 0.6,
            "steps": 4, "guidance": 2.0, "seed": 3, **extra}


@pytest.fixture(scope="module")
def diffused(tmp_path_factory, clip, model):
    """A finished diffusion render, shared by this module's tests: read it, never change it
    (a test that changes it works on a copy)."""
    workdir = tmp_path_factory.mktemp("diffusion-run")
    # measure keeps its defaults: a diffusion run must not stylize every frame to measure
    write_config(workdir, clip, stylizer=diffusion_config(model), output={"compare": False}, keyframes=KEYFRAMES)
    snakemake(workdir)
    return workdir


def test_metrics_of_a_diffusion_run_say_why_fidelity_is_absent(diffused):
    metrics = json.loads((diffused / "results" / "clip" / "metrics.json").read_text())
    assert set(metrics["e_warp"]) == {"output", "input"}
    assert "diffusion" in metrics["fidelity"]["reason_absent"]


def test_diffusion_keyframes_render_a_video_and_records_chain_within_scenes(diffused):
    out = diffused / "results" / "clip"
    assert probe_video(out / "restyled.mp4")["n_frames"] == N_FRAMES
    plan = json.loads((out / "keyframes.json").read_text())
    for key in plan["keyframes"]:
        assert (out / "diffusion" / f"{key:05d}.safetensors").exists()
    log = (diffused / "logs" / "clip" / "record_keyframe").iterdir()
    assert len(list(log)) == len(plan["keyframes"])


def test_a_prompt_override_reruns_only_that_keyframe_its_gaps_and_the_assembly(diffused, clip, model, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(diffused, workdir, symlinks=True)  # its files' times and Snakemake's records too
    override = {"clip": {10: {"prompt": "a charcoal drawing", "seed": 9}}}
    write_config(workdir, clip, stylizer=diffusion_config(model, overrides=override), output={"compare": False},
                 keyframes=KEYFRAMES)
    jobs = planned_jobs(workdir)
    gaps = ["00000-00010", "00010-00015"]
    expected = {(rule, f"video=clip, gap={gap}") for gap in gaps
                for rule in ("compute_flow", "synthesize_gap", "blend_gap", "measure_gap")}
    expected |= {("stylize_keyframe", "video=clip, frame=00010"), ("encode_video", "video=clip"),
                 ("measure", "video=clip"), ("all", "")}
    assert jobs == expected
    before = (workdir / "results" / "clip" / "styled_keyframes" / "00010.png").read_bytes()
    snakemake(workdir)
    assert (workdir / "results" / "clip" / "styled_keyframes" / "00010.png").read_bytes() != before


def test_a_missing_model_is_a_one_line_error(tmp_path, clip):
    write_config(tmp_path, clip, stylizer=diffusion_config(tmp_path / "no-such-model"))
    message = one_line_error(tmp_path)
    assert "no-such-model" in message and "stylizer.model" in message


def test_latent_deflickering_stylizes_each_scene_in_one_batch(tmp_path, clip, model):
    write_config(tmp_path, clip, stylizer=diffusion_config(model, deflicker_steps=[0, 1]),
                 output={"compare": False}, measure={"per_frame_reference": False}, keyframes=KEYFRAMES)
    snakemake(tmp_path)
    out = tmp_path / "results" / "clip"
    assert probe_video(out / "restyled.mp4")["n_frames"] == N_FRAMES
    plan = json.loads((out / "keyframes.json").read_text())
    scenes = sorted(p.name for p in (out / "diffusion_scenes").iterdir())
    assert scenes == [f"{start:05d}" for start, _ in plan["scenes"]]
    assert not (out / "diffusion").exists()  # no per-keyframe records in this mode
