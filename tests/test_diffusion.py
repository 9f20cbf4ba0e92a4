"""The diffusion keyframe stylizer, on tiny random pipelines loaded through the real offline path."""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
import torch
from tiny_diffusion import (
    save_tiny_controlnet,
    save_tiny_sd,
    save_tiny_sdxl,
    save_tiny_sdxl_single_file,
    save_tiny_single_file,
)

from restyle.diffusion import (
    AttentionRecord,
    DiffusionModelError,
    DiffusionStylizer,
    load_pipeline,
    record_size_bytes,
    torch_settings,
)
from restyle.preflight import load_schema, schema_defaults

CONFIG = schema_defaults(Path(__file__).resolve().parents[1])
# The stylizer's settings as the workflow passes them from its config's defaults (by the
# library's names), with few steps: 6 x 0.85 -> 5 denoising steps keep each run well under
# a second on 2 CPU cores.
FAST = {**{name: CONFIG["stylizer"][name] for name in ("negative_prompt", "guidance", "scheduler", "shared_noise",
                                                       "cross_frame_attention", "control")},
        "controlnet_conditioning_scale": CONFIG["stylizer"]["controlnet_scale"],
        "prompt": "an oil painting", "steps": 6, "strength": 0.85, "seed": 3}
# stylize_batch's settings from the config's defaults: no deflickering.
BATCH = {**{name: CONFIG["stylizer"][name] for name in ("deflicker_steps", "deflicker_weight", "deflicker_radius")},
         "flow_preset": CONFIG["flow"]["preset"]}


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    # Two OpenMP threads on a shared 2-core machine spin against each other: a 30 ms UNet call
    # becomes 2 s.  One thread is faster here and the results are the same.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"sd": save_tiny_sd(root / "sd"), "controlnet": save_tiny_controlnet(root / "controlnet"),
            "root": root}


@pytest.fixture(scope="module")
def pipeline(models):
    return load_pipeline(models["sd"])


def photo(seed=0, shape=(48, 64), shift=0):
    """A smooth random 'photo' (low-frequency colour blobs), optionally panned by ``shift`` px."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    wide = cv2.resize(coarse, (shape[1] + 32, shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(wide[:, 16 + shift:16 + shift + shape[1]])


def mean_abs(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def make(pipeline, **options):
    return DiffusionStylizer(pipeline=pipeline, **{**FAST, **options})


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------------------------ loading
def test_loads_offline_without_touching_the_network(models, no_network):
    pipe = load_pipeline(models["sd"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    assert getattr(pipe, "safety_checker", None) is None
    out = DiffusionStylizer(pipeline=pipe, **FAST)(photo(), 0)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_sdxl_is_detected_and_runs(models):
    path = save_tiny_sdxl(models["root"] / "sdxl")
    stylizer = DiffusionStylizer(path, **FAST)
    assert type(stylizer.pipeline).__name__ == "StableDiffusionXLImg2ImgPipeline"
    image, record = stylizer.record_reference(photo(), 0)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert record.layers == stylizer.attention_layers and len(record.timesteps) == 5


def one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_or_wrong_model_paths_are_one_line_errors(tmp_path, models):
    missing = tmp_path / "nope"
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(missing)
    assert str(missing) in one_line(error) and "model_index.json" in one_line(error)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(empty)
    assert str(empty) in one_line(error) and "no model_index.json" in one_line(error)

    for suffix in (".ckpt", ".bin"):
        pickle = tmp_path / f"model{suffix}"
        pickle.write_bytes(b"\x80\x04not really a pickle")
        with pytest.raises(DiffusionModelError) as error:
            load_pipeline(pickle)
        assert str(pickle) in one_line(error) and ".safetensors only" in one_line(error)

    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(garbage, config=models["sd"])
    assert str(garbage) in one_line(error) and "not a readable safetensors" in one_line(error)

    assert isinstance(DiffusionModelError("x"), ValueError)


def test_single_file_needs_a_local_config(tmp_path):
    from safetensors.torch import save_file

    checkpoint = tmp_path / "model.safetensors"
    save_file({"x": torch.zeros(1)}, str(checkpoint))
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(checkpoint)
    assert str(checkpoint) in one_line(error) and "config=" in one_line(error)


def assert_same_pipeline(single, reference, components):
    """``single`` has exactly ``reference``'s weights in ``components`` and renders the same bytes."""
    for name in components:
        ours, theirs = getattr(single, name).state_dict(), getattr(reference, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs), name
    assert single.vae.config.scaling_factor == reference.vae.config.scaling_factor
    frame = photo()
    out = make(single)(frame, 0)
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, make(reference)(frame, 0))


def test_single_file_checkpoint_loads_offline_and_matches_the_diffusers_directory(tmp_path, models, pipeline,
                                                                                   no_network):
    import shutil

    from safetensors import safe_open

    # An A1111-layout checkpoint of the same weights, and a config directory with no weights
    # at all: whatever loads can only have come from the single file.
    checkpoint = save_tiny_single_file(models["sd"], tmp_path / "tiny-sd15.safetensors")
    with safe_open(str(checkpoint), framework="pt") as handle:
        prefixes = {key.split(".")[0] for key in handle.keys()}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    config = shutil.copytree(models["sd"], tmp_path / "config", ignore=shutil.ignore_patterns("*.safetensors"))
    assert not list(config.rglob("*.safetensors"))
    single = load_pipeline(checkpoint, config=config)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert type(single).__name__ == "StableDiffusionImg2ImgPipeline"
    assert getattr(single, "safety_checker", None) is None
    # Every weight arrived, under the right name (diffusers loads CLIP with strict=False, so a
    # missed key would otherwise stay silently random); same schedule and seed: same bytes.
    assert_same_pipeline(single, pipeline, ("unet", "vae", "text_encoder"))

    # A checkpoint lacking a component cannot borrow it from the weightless config directory.
    from safetensors.torch import load_file, save_file

    no_vae = tmp_path / "no-vae.safetensors"
    save_file({k: v for k, v in load_file(str(checkpoint)).items() if not k.startswith("first_stage_model.")},
              str(no_vae))
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(no_vae, config=config)
    assert str(no_vae) in one_line(error) and "AutoencoderKL" in one_line(error)


def test_sdxl_single_file_checkpoint_loads_offline_and_matches_the_diffusers_directory(tmp_path, models,
                                                                                        no_network):
    import shutil

    from safetensors import safe_open

    # SDXL's original layout: UNet (with the label_emb text-time embedding), VAE, CLIP-L under
    # conditioner.embedders.0 and the OpenCLIP-G encoder (fused q/k/v, bare text_projection)
    # under conditioner.embedders.1 -- a different converter from SD 1.5's.
    directory = save_tiny_sdxl(tmp_path / "sdxl")
    checkpoint = save_tiny_sdxl_single_file(directory, tmp_path / "tiny-sdxl.safetensors")
    with safe_open(str(checkpoint), framework="pt") as handle:
        keys = set(handle.keys())
    assert {key.split(".")[0] for key in keys} == {"model", "first_stage_model", "conditioner"}
    assert {".".join(key.split(".")[:3]) for key in keys if key.startswith("conditioner.")} == {
        "conditioner.embedders.0", "conditioner.embedders.1"}
    assert "model.diffusion_model.label_emb.0.0.weight" in keys
    assert "conditioner.embedders.1.model.text_projection" in keys
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in keys
    config = shutil.copytree(directory, tmp_path / "config", ignore=shutil.ignore_patterns("*.safetensors"))
    assert not list(config.rglob("*.safetensors"))
    reference = load_pipeline(directory)
    single = load_pipeline(checkpoint, config=config)
    assert type(single).__name__ == "StableDiffusionXLImg2ImgPipeline"
    # In particular the second text encoder came from the OpenCLIP keys, not from CLIP-L
    # (diffusers picks the converter by key and width).
    assert_same_pipeline(single, reference, ("unet", "vae", "text_encoder", "text_encoder_2"))


def test_pickled_component_weights_are_refused(tmp_path, models):
    import shutil

    copy = shutil.copytree(models["sd"], tmp_path / "sd")
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(copy)
    assert str(copy / "unet") in one_line(error) and "pickle" in one_line(error)

    not_sd = tmp_path / "other"
    not_sd.mkdir()
    (not_sd / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(DiffusionModelError, match="Stable Diffusion"):
        load_pipeline(not_sd)


# ---------------------------------------------------------------------------- stylizing
def test_output_keeps_size_and_dtype_and_is_deterministic(pipeline, models):
    stylizer = make(pipeline)
    frame = photo()
    first = stylizer(frame, 0)
    assert first.shape == frame.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, stylizer(frame.copy(), 0))
    # A freshly loaded pipeline gives the same bytes (CPU generator, no hidden state).
    np.testing.assert_array_equal(first, make(load_pipeline(models["sd"]))(frame, 0))
    # Sizes that are not multiples of 8 come back at their own size.
    odd = photo(shape=(45, 61))
    assert make(pipeline)(odd, 0).shape == (45, 61, 3)
    with pytest.raises(ValueError, match="uint8"):
        stylizer(frame.astype(np.float32), 0)


def test_shared_noise_is_the_same_for_every_keyframe(pipeline):
    frame = photo()
    shared = make(pipeline)
    np.testing.assert_array_equal(shared(frame, 0), shared(frame, 9))
    independent = make(pipeline, shared_noise=False)
    assert mean_abs(independent(frame, 0), independent(frame, 9)) > 1


@pytest.mark.parametrize("override", [{"prompt": "a pencil sketch"}, {"seed": 1234}, {"strength": 0.5}])
def test_an_override_changes_only_its_own_keyframe(pipeline, override):
    frames = [photo(shift=4 * i) for i in range(3)]

    def run_scene(stylizer):
        # As the workflow does: record_keyframe's base run, then for an overridden keyframe
        # stylize_keyframe's own run on the same references.
        images, records = [], []
        for index, frame in enumerate(frames):
            references = [records[0], records[-1]] if records else []
            image, record = stylizer.record_reference(frame, index, references)
            if index in stylizer.overrides:
                image, _ = stylizer.stylize(frame, index, references)
            images.append(image)
            records.append(record)
        return images, records

    plain_images, plain_records = run_scene(make(pipeline))
    stylizer = make(pipeline, overrides={"1": override})  # string keys, as YAML gives them
    images, records = run_scene(stylizer)
    np.testing.assert_array_equal(images[0], plain_images[0])
    np.testing.assert_array_equal(images[2], plain_images[2])
    assert mean_abs(images[1], plain_images[1]) > 0.5
    # The overridden keyframe's reference is the base rendering, identical to the plain run's.
    for layer in plain_records[1].layers:
        for t in plain_records[1].timesteps:
            assert torch.equal(records[1].lookup(layer, t), plain_records[1].lookup(layer, t))


def test_overrides_are_validated(pipeline):
    with pytest.raises(ValueError, match="unknown keys"):
        make(pipeline, overrides={3: {"promt": "typo"}})
    with pytest.raises(ValueError, match="strength"):
        make(pipeline, overrides={3: {"strength": 1.5}})
    with pytest.raises(ValueError, match="no denoising step"):
        make(pipeline, steps=2, strength=0.3)


# ------------------------------------------------------------------- cross-frame attention
def test_attending_to_itself_changes_nothing(pipeline):
    # Keys/values [x; x] give the same softmax-weighted average as [x]: a record of the very
    # same run, used as a reference, must reproduce it.  This checks that records line up
    # with the run layer by layer, timestep by timestep and guidance half by guidance half.
    stylizer = make(pipeline)
    frame = photo()
    image, record = stylizer.record_reference(frame, 0)
    again, _ = stylizer.stylize(frame, 0, references=[record])
    assert np.abs(again.astype(int) - image).max() <= 1


def test_cross_frame_attention_pulls_a_keyframe_towards_its_references(pipeline):
    stylizer = make(pipeline)
    first_frame = photo(seed=1)
    first, record = stylizer.record_reference(first_frame, 0)
    independent, attended = [], []
    for other in (photo(seed=1, shift=8), photo(seed=2)):
        independent.append(mean_abs(stylizer(other, 1), first))
        attended.append(mean_abs(stylizer.stylize(other, 1, references=[record])[0], first))
    assert np.mean(attended) < 0.97 * np.mean(independent), (attended, independent)


def test_records_round_trip_through_safetensors(pipeline, tmp_path):
    stylizer = make(pipeline)
    _, record = stylizer.record_reference(photo(), 0)
    assert len(record.timesteps) == 5 and record.layers == stylizer.attention_layers
    assert all(t.dtype == torch.float16 and t.shape[0] == 2  # both guidance halves
               for per_layer in record.hidden_states.values() for t in per_layer.values())
    path = record.save(tmp_path / "records" / "00000.safetensors")
    loaded = AttentionRecord.load(path)
    assert loaded.layers == record.layers and loaded.timesteps == record.timesteps
    assert loaded.metadata["frame_index"] == "0" and loaded.metadata["steps"] == "6"
    for layer in record.layers:
        for t in record.timesteps:
            assert torch.equal(loaded.lookup(layer, t), record.lookup(layer, t))
    # A reference from memory and the same reference from its file steer identically.
    frame = photo(seed=2)
    from_memory, _ = stylizer.stylize(frame, 1, references=[record])
    from_file, _ = stylizer.stylize(frame, 1, references=[str(path), path])  # duplicates count once
    np.testing.assert_array_equal(from_memory, from_file)
    # Bytes per step agree with the estimate from the UNet config.
    per_step = record_size_bytes(dict(pipeline.unet.config), 48, 64, vae_scale_factor=pipeline.vae_scale_factor)
    assert record.nbytes == per_step * len(record.timesteps)
    not_a_record = tmp_path / "other.safetensors"
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(not_a_record))
    with pytest.raises(ValueError, match="not a restyle attention record"):
        AttentionRecord.load(not_a_record)


def test_record_size_for_sd15_at_512():
    sd15_unet = {"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
                 "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
    # 3 x 256 x 1280 + 3 x 1024 x 640 + 3 x 4096 x 320 values, 2 guidance halves, fp16.
    assert record_size_bytes(sd15_unet, 512, 512) == 27_525_120


def test_nearest_timestep_serves_a_stronger_override(pipeline):
    # A stronger override starts at timesteps the base run never reached; it borrows the
    # nearest recorded one instead of dropping the reference.
    stylizer = make(pipeline, strength=0.5)
    _, record = stylizer.record_reference(photo(), 0)
    layer = record.layers[0]
    earliest = record.timesteps[0]
    assert record.lookup(layer, earliest + 300) is record.lookup(layer, earliest)
    assert record.lookup("up_blocks.9.nothing", earliest) is None


def test_cross_frame_attention_can_be_switched_off(pipeline):
    on = make(pipeline)
    frame, other = photo(seed=1), photo(seed=2)
    _, record = on.record_reference(frame, 0)
    off = make(pipeline, cross_frame_attention=False)
    image, no_record = off.record_reference(other, 1, references=[record])
    assert no_record is None
    np.testing.assert_array_equal(image, off(other, 1))


def test_a_call_leaves_the_process_and_the_unet_as_it_found_them(pipeline):
    unet = pipeline.unet
    processors, hooks = dict(unet.attn_processors), dict(unet._forward_pre_hooks)
    stylizer = make(pipeline, torch_threads=1)
    layer = unet.get_submodule(stylizer.attention_layers[0])
    seen = set()
    spy = unet.register_forward_pre_hook(lambda module, args: seen.add(
        (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), type(layer.processor).__name__)))
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)  # the module's one thread is set again below
    try:
        _, record = stylizer.record_reference(photo(), 0)
        stylizer.stylize_batch([photo(), photo(shift=4)], [0, 1], **BATCH)
        # During the runs: the stylizer's threads, deterministic kernels, its processors ...
        assert seen == {(1, True, "CrossFrameAttnProcessor")}
        # ... and after them the process's settings and the UNet's own processors and hooks.
        assert torch.get_num_threads() == 2
        assert torch.are_deterministic_algorithms_enabled() == deterministic
    finally:
        torch.set_num_threads(1)
        spy.remove()
    assert dict(unet.attn_processors) == processors and dict(unet._forward_pre_hooks) == hooks
    assert record.layers == stylizer.attention_layers


def test_torch_settings_apply_inside_the_block_only():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch_settings(threads=3, deterministic=True):
        assert torch.get_num_threads() == 3 and torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)
    with pytest.raises(RuntimeError), torch_settings(threads=3):
        raise RuntimeError("a failed run")
    assert torch.get_num_threads() == threads


def test_the_config_schema_supplies_every_setting_the_stylizer_requires():
    # The workflow passes its config's stylizer section as is (restyle.stylize.diffusion_stylizer
    # renames controlnet_scale), and the library has no default of its own for these: FAST
    # holds each (from the schema's defaults).  The schema's scheduler and control choices are
    # checked in test_config_schema.py.
    import inspect

    from restyle.diffusion.stylizer import OVERRIDE_KEYS

    required = {name for name, parameter in inspect.signature(DiffusionStylizer).parameters.items()
                if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty}
    assert required == set(FAST)
    batch = inspect.signature(DiffusionStylizer.stylize_batch).parameters
    assert {name for name, parameter in batch.items() if parameter.kind is parameter.KEYWORD_ONLY} == set(BATCH)
    stylizer = load_schema(Path(__file__).resolve().parents[1])["properties"]["stylizer"]["properties"]
    override = stylizer["overrides"]["additionalProperties"]["additionalProperties"]
    assert set(override["properties"]) == set(OVERRIDE_KEYS)


# ---------------------------------------------------------------------------------- ControlNet
def test_controlnet_canny_img2img(models, tmp_path):
    stylizer = DiffusionStylizer(models["sd"], controlnet_path=models["controlnet"],
                                 **{**FAST, "controlnet_conditioning_scale": 0.8})
    assert type(stylizer.pipeline).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
    image, record = stylizer.record_reference(photo(), 0)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and record is not None
    # control="none" loads the plain pipeline even when a ControlNet path is configured.
    plain = DiffusionStylizer(models["sd"], controlnet_path=models["controlnet"], **{**FAST, "control": "none"})
    assert type(plain.pipeline).__name__ == "StableDiffusionImg2ImgPipeline"
    # A ControlNet from another base family is refused before any denoising.
    sdxl_controlnet = save_tiny_controlnet(tmp_path / "controlnet-xl", sdxl=True)
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(models["sd"], controlnet_path=sdxl_controlnet)
    assert "does not fit" in one_line(error)
    with pytest.raises(DiffusionModelError) as error:
        load_pipeline(models["sd"], controlnet_path=tmp_path / "missing-controlnet")
    assert "ControlNet not found" in one_line(error)


# --------------------------------------------------------------------------- deflickering
def warped_disagreement(images, frames):
    """Mean |frame i - frame i+1 warped into i| over trusted pixels (flow from the inputs)."""
    from restyle.flow import compute_flow, occlusion_mask, warp

    errors = []
    for i in range(len(frames) - 1):
        forward, backward = compute_flow(frames[i], frames[i + 1]), compute_flow(frames[i + 1], frames[i])
        trusted = ~occlusion_mask(forward, backward)
        aligned = warp(np.asarray(images[i + 1], np.float32), forward)
        errors.append(np.abs(aligned - np.asarray(images[i], np.float32))[trusted].mean())
    return float(np.mean(errors))


def test_blend_aligned_makes_flickering_frames_agree():
    from restyle.diffusion.deflicker import align_frames, blend_aligned

    frames = [photo(seed=5, shift=3 * i) for i in range(4)]
    rng = np.random.default_rng(0)
    # Per-frame flicker: a random colour cast plus grain, independent between frames.
    flickering = [np.clip(f + rng.normal(0, 12, 3) + rng.normal(0, 6, f.shape), 0, 255) for f in frames]
    alignment = align_frames(frames, radius=1, preset="medium")
    assert [len(row) for row in alignment.neighbours] == [1, 2, 2, 1]
    blended = blend_aligned(flickering, alignment, weight=1.0)
    assert warped_disagreement(blended, frames) < 0.7 * warped_disagreement(flickering, frames)
    np.testing.assert_allclose(blend_aligned(flickering, alignment, weight=0.0)[2], flickering[2], atol=1e-4)


def test_latent_deflicker_rewrites_x0_at_the_chosen_steps_only(pipeline, monkeypatch):
    from restyle.diffusion import deflicker

    frames = [photo(seed=1, shift=4 * i) for i in range(3)]
    stylizer = make(pipeline)
    plain = stylizer.stylize_batch(frames, [0, 1, 2], **BATCH)
    for frame, image in zip(frames, plain):  # batching alone changes nothing
        assert np.abs(stylizer(frame, 0).astype(int) - image).max() <= 1

    calls = []

    def keep_x0(x0, alignment, decode, encode, weight):
        calls.append(x0.shape[0])
        return x0

    # An x0 -> model output -> x0 round trip that keeps x0 must leave the run as it was.
    monkeypatch.setattr(deflicker, "deflicker_x0", keep_x0)
    kept = stylizer.stylize_batch(frames, [0, 1, 2], **{**BATCH, "deflicker_steps": (1, 3)})
    assert calls == [3, 3]
    for a, b in zip(kept, plain):
        assert np.abs(a.astype(int) - b).max() <= 1

    def average_x0(x0, alignment, decode, encode, weight):
        return x0.mean(dim=0, keepdim=True).expand_as(x0).clone()

    # Forcing the frames' x0 to agree at every step makes their outputs (nearly) agree: each
    # step keeps only sqrt(1 - abar_prev) / sqrt(1 - abar_t) of the remaining disagreement.
    monkeypatch.setattr(deflicker, "deflicker_x0", average_x0)
    agreed = stylizer.stylize_batch(frames, [0, 1, 2], **{**BATCH, "deflicker_steps": range(5)})
    assert mean_abs(agreed[0], agreed[2]) < 0.2 * mean_abs(plain[0], plain[2])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' Euler init, numpy 2
def test_stylize_batch_with_real_deflicker_and_validation(pipeline):
    frames = [photo(seed=1, shift=4 * i) for i in range(3)]
    stylizer = make(pipeline)
    images = stylizer.stylize_batch(frames, [0, 1, 2], **{**BATCH, "deflicker_steps": (2,)})
    assert len(images) == 3 and all(i.shape == (48, 64, 3) and i.dtype == np.uint8 for i in images)
    with pytest.raises(ValueError, match="deflicker_steps"):
        stylizer.stylize_batch(frames, [0, 1, 2], **{**BATCH, "deflicker_steps": (5,)})
    with pytest.raises(ValueError, match="one strength"):
        make(pipeline, overrides={1: {"strength": 0.5}}).stylize_batch(frames, [0, 1, 2], **BATCH)
    euler = make(pipeline, scheduler="euler")
    try:
        with pytest.raises(ValueError, match="DDIM-family"):
            euler.stylize_batch(frames, [0, 1, 2], **{**BATCH, "deflicker_steps": (1,)})
    finally:
        make(pipeline, scheduler="ddim")  # the pipeline is shared by this module's tests
