"""Tiny, randomly initialised Stable Diffusion pipelines for tests.

Real checkpoints are gigabytes and would need the network; these are a few hundred
kilobytes, built from seeded random weights and written in the diffusers directory layout
(``save_pretrained(safe_serialization=True)``), so tests exercise the same offline loading
path as a real model.  The architecture mirrors SD 1.5 (CLIP text encoder, UNet with
cross-attention in the encoder and the decoder, KL autoencoder, DDIM) at toy sizes.

Nothing here touches the network: even the tokenizer is built from a vocabulary written
here rather than downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

TEXT_DIM = 32
# SDXL's second (OpenCLIP bigG) text encoder is wider than its CLIP-L one (1280 vs 768);
# diffusers' single-file loader tells the two apart by that width, so the toy keeps them different.
TEXT_DIM_2 = 48
SDXL_CROSS_DIM = TEXT_DIM + TEXT_DIM_2  # the UNet attends to both encoders' hidden states, concatenated


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (needed for byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def write_tiny_clip_vocab(directory: Path) -> tuple[Path, Path]:
    """Write a byte-level CLIP ``vocab.json``/``merges.txt`` pair of about 600 entries.

    Every byte is a token (alone and as a word end ``</w>``), so any prompt tokenizes; a
    handful of merges make common words single tokens, which is all a tiny text encoder
    needs to tell prompts apart.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = ["a n", "o i", "t h", "th e</w>", "p a", "i n", "r e"]
    for merge in merges:
        vocab_list.append(merge.replace(" ", ""))
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    vocab_path = directory / "vocab.json"
    merges_path = directory / "merges.txt"
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def tiny_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP tokenizer over :func:`write_tiny_clip_vocab`'s vocabulary (77 tokens long)."""
    vocab_path, merges_path = write_tiny_clip_vocab(directory)
    return CLIPTokenizer(vocab=str(vocab_path), merges=str(merges_path), model_max_length=77)


def _text_config(hidden_size: int = TEXT_DIM, **extra) -> CLIPTextConfig:
    return CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=hidden_size, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=1000,
        max_position_embeddings=77, **extra,
    )


def tiny_unet(**extra) -> UNet2DConditionModel:
    """SD-style UNet with attention in both decoder blocks (4 decoder self-attention layers).

    Random initialisation gives nearly uniform attention (query-key logits ~0), under which
    attending to more tokens only averages; trained models attend sharply to matching
    content.  Scaling the self-attention query/key projections (sharper softmax) and output
    projection (a stronger say in the residual stream) makes the toy behave more like the
    real thing, so tests can see cross-frame attention act.
    """
    options = dict(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=(2, 4), norm_num_groups=32,
    )
    options.update(extra)
    unet = UNet2DConditionModel(**options)
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn1"):
                module.to_q.weight *= 4.0
                module.to_k.weight *= 4.0
                module.to_out[0].weight *= 2.0
    return unet


def tiny_vae() -> AutoencoderKL:
    """KL autoencoder downsampling by 2 (two blocks) instead of SD's 8: same code path, 16x cheaper.

    ``scaling_factor`` brings this random encoder's latents (std ~0.25) to unit variance, as
    SD's 0.18215 does for its trained one; with SD's value the frame would be 25x weaker than
    the noise and every output would look alike, hiding what the tests look for.
    """
    return AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4, norm_num_groups=32,
        scaling_factor=4.0,
    )


def tiny_scheduler() -> DDIMScheduler:
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def build_tiny_sd(work_dir: Path, seed: int = 0) -> StableDiffusionImg2ImgPipeline:
    """An SD 1.5-shaped img2img pipeline with seeded random weights."""
    torch.manual_seed(seed)
    unet = tiny_unet()
    vae = tiny_vae()
    text_encoder = CLIPTextModel(_text_config())
    tokenizer = tiny_tokenizer(Path(work_dir) / "vocab")
    return StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=tiny_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def save_tiny_sd(directory: Path, seed: int = 0) -> Path:
    """Build :func:`build_tiny_sd` and write it in the diffusers layout (safetensors only)."""
    directory = Path(directory)
    build_tiny_sd(directory.parent / f"{directory.name}-vocab", seed).save_pretrained(
        directory, safe_serialization=True)
    return directory


def save_tiny_controlnet(directory: Path, seed: int = 1, sdxl: bool = False) -> Path:
    """A ControlNet matching :func:`tiny_unet` (or the SDXL one of :func:`save_tiny_sdxl`).

    Its hint encoder downsamples by 2, like :func:`tiny_vae`.
    """
    torch.manual_seed(seed)
    sdxl_options = dict(
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_DIM + 6 * 8, transformer_layers_per_block=(1, 2),
        cross_attention_dim=SDXL_CROSS_DIM, use_linear_projection=True,
    ) if sdxl else dict(cross_attention_dim=TEXT_DIM)
    controlnet = ControlNetModel(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        attention_head_dim=(2, 4), norm_num_groups=32, conditioning_embedding_out_channels=(16, 32),
        **sdxl_options,
    )
    controlnet.save_pretrained(directory, safe_serialization=True)
    return Path(directory)


def save_tiny_sdxl(directory: Path, seed: int = 0) -> Path:
    """An SDXL-shaped img2img pipeline (two text encoders, text-time conditioning), saved."""
    directory = Path(directory)
    torch.manual_seed(seed)
    unet = tiny_unet(
        # SDXL conditions on pooled text (text_encoder_2 projected to 32) + 6 size/crop numbers
        # embedded to 8 each.
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=TEXT_DIM + 6 * 8,
        transformer_layers_per_block=(1, 2), cross_attention_dim=SDXL_CROSS_DIM, use_linear_projection=True,
    )
    vae = tiny_vae()
    text_encoder = CLIPTextModel(_text_config())
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(TEXT_DIM_2, projection_dim=TEXT_DIM))
    vocab_dir = directory.parent / f"{directory.name}-vocab"
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=tiny_tokenizer(vocab_dir), tokenizer_2=tiny_tokenizer(vocab_dir),
        unet=unet, scheduler=tiny_scheduler(), requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


# ------------------------------------------------------------------ single-file (A1111) layout
_LDM_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
               "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_LDM_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_to_ldm(state: dict, config: dict) -> dict:
    """diffusers UNet keys -> ``model.diffusion_model.*`` (the inverse of ``convert_ldm_unet_checkpoint``)."""
    import re

    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    if config.get("addition_embed_type") == "text_time":  # SDXL's pooled-text + size/crop embedding
        direct.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"])
    per_block = config["layers_per_block"] + 1  # resnets (+ attentions) and one down/upsampler slot
    up_has_attention = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}

    def resnet(rest):
        head, _, tail = rest.partition(".")
        return f"{_LDM_RESNET.get(head, head)}.{tail}"

    out = {}
    for key, tensor in state.items():
        if key in direct:
            ldm = direct[key]
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = 1 + block * per_block + layer
            ldm = f"input_blocks.{index}.0.{resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            ldm = f"input_blocks.{1 + int(m[1]) * per_block + per_block - 1}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            ldm = f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            ldm = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = block * per_block + layer
            ldm = f"output_blocks.{index}.0.{resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            block = int(m[1])
            slot = 2 if block in up_has_attention else 1
            ldm = f"output_blocks.{block * per_block + per_block - 1}.{slot}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + ldm] = tensor
    return out


def _vae_to_ldm(state: dict, config: dict) -> dict:
    """diffusers VAE keys -> ``first_stage_model.*`` (the inverse of ``convert_ldm_vae_checkpoint``).

    The mid-block attention projections become 1x1 convolutions, as in the original checkpoints.
    """
    import re

    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["vae"]
    blocks = len(config["up_block_types"])

    def resnet(rest):
        return rest.replace("conv_shortcut", "nin_shortcut")

    out = {}
    for key, tensor in state.items():
        if key in direct:
            ldm = direct[key]
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            ldm = f"encoder.down.{m[1]}.block.{m[2]}.{resnet(m[3])}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            ldm = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            ldm = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{resnet(m[3])}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            ldm = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            ldm = f"{m[1]}.mid.block_{int(m[2]) + 1}.{resnet(m[3])}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)"
                               r"\.(weight|bias)", key):
            ldm = f"{m[1]}.mid.attn_1.{_LDM_VAE_ATTENTION[m[2]]}.{m[3]}"
            if m[2] != "group_norm" and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # nn.Linear -> 1x1 Conv2d
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out["first_stage_model." + ldm] = tensor
    return out


def _clip_to_ldm(state: dict) -> dict:
    """transformers CLIPTextModel keys -> ``cond_stage_model.transformer.text_model.*``.

    transformers >= 5.6 saves CLIPTextModel without its ``text_model.`` wrapper; the original
    checkpoints (and diffusers' single-file loader) name it.
    """
    out = {}
    for key, tensor in state.items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = tensor
    return out


_OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                    "self_attn.out_proj": "attn.out_proj"}


def _open_clip_to_ldm(state: dict, prefix: str) -> dict:
    """transformers CLIPTextModelWithProjection keys -> OpenCLIP ``{prefix}*`` (SDXL's ``conditioner.embedders.1.model.``).

    The inverse of ``convert_open_clip_checkpoint``: q/k/v projections are stacked into one
    ``attn.in_proj_weight``/``in_proj_bias``, ``text_projection`` is a bare (hidden, projection)
    matrix (the transpose of the ``nn.Linear`` weight), and the embeddings/final norm take
    OpenCLIP's names.
    """
    import re

    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    direct = DIFFUSERS_TO_LDM_MAPPING["openclip"]["layers"]
    state = {(k if k.startswith(("text_model.", "text_projection.")) else "text_model." + k): v
             for k, v in state.items() if not k.endswith("position_ids")}
    out, qkv = {}, {}
    for key, tensor in state.items():
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = tensor.T.contiguous()
        elif key in direct:
            out[prefix + direct[key]] = tensor
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)", key):
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = tensor
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2"
                               r"|self_attn\.out_proj)\.(weight|bias)", key):
            out[f"{prefix}transformer.resblocks.{m[1]}.{_OPEN_CLIP_LAYER[m[2]]}.{m[3]}"] = tensor
        else:
            raise KeyError(f"no OpenCLIP name for text-encoder key {key}")
    for (layer, kind), parts in qkv.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]])
    return out


def _check_round_trip(checkpoint: dict, parts: dict, configs: dict, open_clip_prefix: str | None = None) -> None:
    """Convert ``checkpoint`` back with diffusers' own single-file converters; every tensor must return.

    ``parts`` holds the diffusers state dicts by component (``unet``, ``vae``, ``text_encoder``
    and, for SDXL, ``text_encoder_2`` converted from OpenCLIP under ``open_clip_prefix``).
    """
    from types import SimpleNamespace

    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    back = {
        "unet": convert_ldm_unet_checkpoint(checkpoint, configs["unet"]),
        "vae": convert_ldm_vae_checkpoint(checkpoint, configs["vae"]),
        "text_encoder": {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(checkpoint).items()},
    }
    if open_clip_prefix is not None:
        # The model is consulted only for its width when the checkpoint lacks text_projection.
        model = SimpleNamespace(config=SimpleNamespace(hidden_size=configs["text_encoder_2"]["hidden_size"]))
        back["text_encoder_2"] = convert_open_clip_checkpoint(model, checkpoint, prefix=open_clip_prefix)
    parts = dict(parts)
    if "text_encoder" in parts:  # CLIPTextModel may be saved with or without its text_model. wrapper
        parts["text_encoder"] = {k.removeprefix("text_model."): v for k, v in parts["text_encoder"].items()}
    for name, original in parts.items():
        converted = back[name]
        if set(converted) != set(original):
            raise AssertionError(f"{name}: round trip lost {sorted(set(original) - set(converted))[:5]}, "
                                 f"invented {sorted(set(converted) - set(original))[:5]}")
        for key, tensor in original.items():
            if converted[key].shape != tensor.shape or not torch.equal(converted[key], tensor):
                raise AssertionError(f"{name}: {key} does not survive the round trip")


def _load_parts(diffusers_dir: Path, names) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    parts, configs = {}, {}
    for name in names:
        (weights,) = (diffusers_dir / name).glob("*.safetensors")
        parts[name] = load_file(str(weights))
        configs[name] = json.loads((diffusers_dir / name / "config.json").read_text(encoding="utf-8"))
    return parts, configs


def save_tiny_single_file(diffusers_dir: Path, out_path: Path) -> Path:
    """Write a :func:`save_tiny_sd` pipeline as one A1111/original-LDM ``.safetensors`` checkpoint.

    Keys follow the original layout (``model.diffusion_model.*``, ``first_stage_model.*``,
    ``cond_stage_model.transformer.text_model.*``, plus the CLIP ``position_ids`` buffer real
    SD 1.5 files carry).  The mapping inverts diffusers' single-file converters and is checked
    by running them on the result: every UNet, VAE and text-encoder tensor must come back
    unchanged under its diffusers name, else this raises.
    """
    from safetensors.torch import save_file

    diffusers_dir, out_path = Path(diffusers_dir), Path(out_path)
    parts, configs = _load_parts(diffusers_dir, ("unet", "vae", "text_encoder"))
    checkpoint = {**_unet_to_ldm(parts["unet"], configs["unet"]), **_vae_to_ldm(parts["vae"], configs["vae"]),
                  **_clip_to_ldm(parts["text_encoder"])}
    _check_round_trip(checkpoint, parts, configs)
    positions = configs["text_encoder"]["max_position_embeddings"]
    checkpoint["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(positions)[None]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(out_path))
    return out_path


def save_tiny_sdxl_single_file(diffusers_dir: Path, out_path: Path) -> Path:
    """Write a :func:`save_tiny_sdxl` pipeline as one original-SDXL ``.safetensors`` checkpoint.

    Keys follow Stability's SDXL layout: ``model.diffusion_model.*`` (with ``label_emb.0.*``
    for the text-time embedding), ``first_stage_model.*``, CLIP-L under
    ``conditioner.embedders.0.transformer.text_model.*`` and the OpenCLIP-G encoder with its
    projection under ``conditioner.embedders.1.model.*``.  As for SD 1.5, the result is
    converted back with diffusers' own converters (``convert_open_clip_checkpoint`` for the
    second encoder) and every tensor must return unchanged, else this raises.

    diffusers' key-based detection of a *full-size* SDXL file (``infer_diffusers_model_type``
    looks for OpenCLIP's tenth residual block) does not fire on this two-layer toy; loading
    it needs ``config=`` pointing at the SDXL directory, which is what restyle requires anyway.
    """
    from safetensors.torch import save_file

    diffusers_dir, out_path = Path(diffusers_dir), Path(out_path)
    parts, configs = _load_parts(diffusers_dir, ("unet", "vae", "text_encoder", "text_encoder_2"))
    open_clip = "conditioner.embedders.1.model."
    clip_l = {k.replace("cond_stage_model.transformer.", "conditioner.embedders.0.transformer.", 1): v
              for k, v in _clip_to_ldm(parts["text_encoder"]).items()}
    checkpoint = {**_unet_to_ldm(parts["unet"], configs["unet"]), **_vae_to_ldm(parts["vae"], configs["vae"]),
                  **clip_l, **_open_clip_to_ldm(parts["text_encoder_2"], open_clip)}
    _check_round_trip(checkpoint, parts, configs, open_clip_prefix=open_clip)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(out_path))
    return out_path
