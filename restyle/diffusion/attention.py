"""Cross-frame attention across keyframe jobs: record a keyframe's decoder self-attention
inputs, and let later keyframes attend to them.

Rerender-A-Video keeps keyframes of a scene consistent by letting the UNet *decoder*
self-attention layers (``up_blocks.*.attn1``) of keyframe ``k`` attend not only to its own
features but also to those of the scene's first keyframe and of keyframe ``k - 1``, taken
at the same denoising step (Yang et al., "Rerender A Video", SIGGRAPH Asia 2023,
arXiv:2306.07954).  Content, colours and textures
then flow from the references into the new keyframe, while its own queries keep its layout.

restyle renders one keyframe per workflow job, so the references must cross process
boundaries.  The design has two halves:

* **record** -- while a keyframe is denoised, :class:`CrossFrameAttnProcessor` stores the
  input of ``to_k``/``to_v`` (the normalised hidden states) of every decoder self-attention
  layer at every UNet call, keyed by layer name and scheduler timestep, both classifier-free
  guidance halves included.  :class:`AttentionRecord` holds them and saves them with
  safetensors (fp16);
* **reference** -- a later keyframe, given records, concatenates the references' hidden states
  for the same layer and timestep to its own along the token axis before projecting keys and
  values: ``K = to_k([x; r_first; r_prev])``, ``V = to_v([x; r_first; r_prev])``, ``Q = to_q(x)``.

Keying by *timestep* rather than step index matters: a keyframe with a different strength
starts at a different timestep but shares the rest of the schedule, so its steps still meet
the reference's features at the same noise level.  A timestep the reference never visited
(a stronger override starts earlier) uses the reference's nearest recorded timestep.

Size: for SD 1.5 at 512x512 the decoder self-attention layers see 3 x 256 x 1280 +
3 x 1024 x 640 + 3 x 4096 x 320 = 6.9 M values per image and UNet call; with both guidance
halves in fp16 that is ~27.5 MB per denoising step (~410 MB for 15 steps).  ``blocks``
(which ``up_blocks`` take part) is the knob that trades consistency for size: the
highest-resolution block alone is 57 % of it.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from restyle import io

RECORD_FORMAT = "restyle-attention-record"
RECORD_VERSION = "1"
_KEY_SEPARATOR = "|t="


@dataclass
class AttentionRecord:
    """Decoder self-attention inputs of one keyframe, per layer and per denoising timestep.

    Attributes
    ----------
    hidden_states : dict
        ``{layer_name: {timestep: tensor (batch, tokens, channels)}}``.  ``batch`` is 2 with
        classifier-free guidance (unconditional half first, as diffusers batches them) and 1
        without.  Tensors live on the CPU.
    metadata : dict of str to str
        Free-form provenance (frame index, size, prompt hash ...), saved in the file header.
    """

    hidden_states: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self._sorted_timesteps: dict[str, list[int]] = {}

    def add(self, layer: str, timestep: int, hidden: torch.Tensor) -> None:
        """Store ``hidden`` for ``layer`` at ``timestep`` (a later call at the same timestep wins)."""
        self.hidden_states.setdefault(layer, {})[int(timestep)] = hidden
        self._sorted_timesteps.pop(layer, None)

    @property
    def layers(self) -> list[str]:
        return sorted(self.hidden_states)

    @property
    def timesteps(self) -> list[int]:
        """Every timestep recorded in any layer, in decreasing order (denoising order)."""
        return sorted({t for per_layer in self.hidden_states.values() for t in per_layer}, reverse=True)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for per_layer in self.hidden_states.values()
                   for t in per_layer.values())

    def lookup(self, layer: str, timestep: int) -> torch.Tensor | None:
        """Hidden states of ``layer`` at ``timestep``, or at the nearest recorded timestep.

        Returns ``None`` when the layer was never recorded (e.g. a record from a UNet with a
        different decoder, or one restricted to other blocks).
        """
        per_layer = self.hidden_states.get(layer)
        if not per_layer:
            return None
        exact = per_layer.get(int(timestep))
        if exact is not None:
            return exact
        ordered = self._sorted_timesteps.get(layer)
        if ordered is None:
            ordered = self._sorted_timesteps[layer] = sorted(per_layer)
        position = bisect.bisect_left(ordered, timestep)
        neighbours = ordered[max(0, position - 1): position + 1]
        nearest = min(neighbours, key=lambda t: abs(t - timestep))
        return per_layer[nearest]

    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write the record as one safetensors file (tensors in ``dtype``; ``None`` keeps theirs).

        Records made by :class:`CrossFrameAttnProcessor` are already fp16, the intended
        on-disk precision.  Tensor names are ``"<layer>|t=<timestep>"``; the header metadata carries the format
        name and version and :attr:`metadata`.
        """
        from safetensors.torch import save_file

        tensors = {f"{layer}{_KEY_SEPARATOR}{timestep}": hidden.to("cpu", dtype or hidden.dtype).contiguous()
                   for layer, per_layer in self.hidden_states.items() for timestep, hidden in per_layer.items()}
        header = {str(k): str(v) for k, v in self.metadata.items()}
        header.update(format=RECORD_FORMAT, version=RECORD_VERSION)
        path = Path(path)
        # Atomically: a killed job must never leave a truncated record for the next keyframe.
        with io.staged_file(path) as partial:
            save_file(tensors, partial, metadata=header)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AttentionRecord:
        """Read a record written by :meth:`save` (tensors stay in their on-disk dtype, on the CPU)."""
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                header = dict(handle.metadata() or {})
                if header.get("format") != RECORD_FORMAT:
                    raise ValueError(f"{path} is not a restyle attention record (format {header.get('format')!r})")
                record = cls(metadata={k: v for k, v in header.items() if k not in ("format", "version")})
                for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                    layer, _, timestep = key.rpartition(_KEY_SEPARATOR)
                    record.add(layer, int(timestep), handle.get_tensor(key))
        except (OSError, RuntimeError) as error:
            # safetensors reports a truncated or foreign file as a bare error; say which file.
            raise ValueError(f"cannot read attention record {path}: {error}") from error
        return record


class CrossFrameState:
    """What the processors of one UNet share during a denoising run.

    Attributes
    ----------
    timestep : int or None
        The scheduler timestep of the UNet call in progress, set by a forward pre-hook on the
        UNet (see :func:`cross_frame_attention`).
    recording : AttentionRecord or None
        Where to store this run's hidden states; ``None`` records nothing.
    references : list of AttentionRecord
        Records whose hidden states join the keys/values.
    record_dtype : torch.dtype
        Precision of recorded tensors (fp16: half the disk, and SD activations fit it).
    """

    def __init__(self, record_dtype: torch.dtype = torch.float16):
        self.record_dtype = record_dtype
        self.timestep: int | None = None
        self.recording: AttentionRecord | None = None
        self.references: list[AttentionRecord] = []

    def reset(self) -> None:
        self.timestep = None
        self.recording = None
        self.references = []


def _match_batch(reference: torch.Tensor, batch: int) -> torch.Tensor:
    """Line a reference's batch up with the current one (CFG on one side and off on the other)."""
    if reference.shape[0] == batch:
        return reference
    if reference.shape[0] == 1:
        return reference.expand(batch, -1, -1)
    if batch == 1:
        # Reference recorded with guidance, current run without: its conditional half is the
        # one that matches an unguided prediction.
        return reference[-1:]
    if batch % reference.shape[0] == 0:
        # diffusers batches guidance halves as [uncond x n, cond x n]: each reference half must
        # repeat in place, not cycle ([u, c, u, c] would pair uncond with cond).
        return reference.repeat_interleave(batch // reference.shape[0], dim=0)
    raise ValueError(f"cannot pair a reference of batch {reference.shape[0]} with a batch of {batch}")


class CrossFrameAttnProcessor:
    """Self-attention whose keys/values also see recorded reference hidden states.

    Computes exactly what diffusers' ``AttnProcessor2_0`` computes (PyTorch's
    ``scaled_dot_product_attention``, so memory-efficient/flash kernels on CUDA) when there
    is nothing to reference; with references, their hidden states are appended to the
    key/value input along the token axis.  Cross-attention calls (text conditioning) and
    masked calls pass through untouched.

    Parameters
    ----------
    layer_name : str
        Module path of the attention layer in the UNet (the record key).
    state : CrossFrameState
        Shared with every processor of the UNet and with the stylizer driving it.
    """

    def __init__(self, layer_name: str, state: CrossFrameState):
        self.layer_name = layer_name
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        is_self_attention = encoder_hidden_states is None
        if is_self_attention:
            key_value_input = self._self_key_value_input(hidden_states, attention_mask)
        else:
            key_value_input = encoder_hidden_states
            if attn.norm_cross:
                key_value_input = attn.norm_encoder_hidden_states(key_value_input)

        key_length = key_value_input.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        key = attn.to_k(key_value_input)
        value = attn.to_v(key_value_input)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                       dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def _self_key_value_input(self, hidden_states: torch.Tensor, attention_mask) -> torch.Tensor:
        """This frame's hidden states, recorded if asked, followed by the references' (if any)."""
        state = self.state
        timestep = state.timestep
        if timestep is None:
            return hidden_states
        if state.recording is not None:
            # To the CPU at once: a GPU would otherwise hold every step of every layer.
            # Stored in the on-disk dtype right away, so a record used straight from memory and the
            # same record read back from its file steer later keyframes identically.
            state.recording.add(self.layer_name, timestep,
                                hidden_states.detach().to("cpu", state.record_dtype, copy=True))
        if not state.references or attention_mask is not None:
            # A masked self-attention has no meaning for extra tokens; none occur in SD UNets.
            return hidden_states
        parts = [hidden_states]
        for reference in state.references:
            recorded = reference.lookup(self.layer_name, timestep)
            if recorded is None:
                continue
            if recorded.shape[-1] != hidden_states.shape[-1]:
                raise ValueError(f"attention record for {self.layer_name} has {recorded.shape[-1]} channels, "
                                 f"the model has {hidden_states.shape[-1]}: it was recorded with another model")
            recorded = recorded.to(hidden_states.device, hidden_states.dtype, non_blocking=True)
            parts.append(_match_batch(recorded, hidden_states.shape[0]))
        return torch.cat(parts, dim=1) if len(parts) > 1 else hidden_states


def decoder_self_attention_layers(unet: torch.nn.Module, blocks: Iterable[int] | None = None) -> dict[str, torch.nn.Module]:
    """The UNet decoder's self-attention modules, ``{"up_blocks.i.....attn1": module}``.

    ``blocks`` restricts them to the given ``up_blocks`` indices (``None``: all).

    Raises
    ------
    ValueError
        When there is none (a UNet without decoder attention, or ``blocks`` that hold none).
    """
    from diffusers.models.attention_processor import Attention

    wanted = None if blocks is None else {int(b) for b in blocks}
    layers = {}
    for name, module in unet.named_modules():
        parts = name.split(".")
        if (len(parts) > 2 and parts[0] == "up_blocks" and parts[-1] == "attn1" and isinstance(module, Attention)
                and (wanted is None or int(parts[1]) in wanted)):
            layers[name] = module
    if not layers:
        raise ValueError("this UNet has no decoder self-attention layers (up_blocks.*.attn1) for the chosen blocks")
    return layers


@contextlib.contextmanager
def cross_frame_attention(unet: torch.nn.Module, state: CrossFrameState,
                          blocks: Sequence[int] | None = None) -> Iterator[list[str]]:
    """:class:`CrossFrameAttnProcessor` on the decoder self-attention layers of ``unet``,
    for the duration of the block.

    Also registers a forward pre-hook that publishes each UNet call's timestep in ``state``
    (the processors cannot see it otherwise).  Other layers keep their processors.  On leaving
    the block the hook is removed and every layer gets back the processor it had, so the UNet
    carries nothing of ours between runs and stylizers may share it one run at a time.  Do
    not reset processors wholesale inside the block (``set_attn_processor``,
    ``enable_xformers_memory_efficient_attention``): that silently removes these.

    Yields
    ------
    layer_names : list of str
        The layers recording/referencing, sorted.

    Raises
    ------
    ValueError
        When ``unet`` has no decoder self-attention layer in ``blocks``.
    """
    layers = decoder_self_attention_layers(unet, blocks)

    def publish_timestep(module, args, kwargs):
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if timestep is None:
            state.timestep = None
        elif torch.is_tensor(timestep):
            # The same timestep for the whole batch in every diffusers img2img pipeline.
            state.timestep = round(float(timestep.flatten()[0]))
        else:
            state.timestep = round(float(timestep))

    previous = {name: module.processor for name, module in layers.items()}
    hook = unet.register_forward_pre_hook(publish_timestep, with_kwargs=True)
    try:
        for name, module in layers.items():
            module.set_processor(CrossFrameAttnProcessor(name, state))
        yield sorted(layers)
    finally:
        hook.remove()
        for name, module in layers.items():
            module.set_processor(previous[name])


def record_size_bytes(unet_config: dict, height: int, width: int, vae_scale_factor: int = 8,
                      guidance: bool = True, bytes_per_value: int = 2, blocks: Sequence[int] | None = None) -> int:
    """Bytes one denoising step adds to an :class:`AttentionRecord`, from a UNet config.

    For sizing a disk before a run: a keyframe's record holds ``int(steps * strength)``
    steps, so its file is about ``record_size_bytes(...) * int(steps * strength)`` bytes
    (SD 1.5 at 512x512: 27.5 MB a step).  Counts every ``up_blocks`` self-attention layer:
    tokens at that block's resolution times its channels, times the transformer depth and
    the number of attentions in the block.

    Parameters
    ----------
    unet_config : dict or path-like
        The UNet's config, or the path of the model's ``unet/config.json``.
    height, width : int
        Working size of the frames in pixels.
    vae_scale_factor : int
        Pixels per latent (the pipeline's ``vae_scale_factor``).
    guidance : bool
        Classifier-free guidance on (both halves recorded).
    bytes_per_value : int
        2 for the fp16 records :class:`CrossFrameAttnProcessor` makes.
    blocks : sequence of int, optional
        The ``up_blocks`` recorded (``cross_frame_blocks`` of the stylizer); ``None``: all.

    Returns
    -------
    int
    """
    if isinstance(unet_config, (str, os.PathLike)):
        unet_config = json.loads(Path(unet_config).read_text())
    channels = list(unet_config["block_out_channels"])
    up_types = list(unet_config["up_block_types"])
    layers_per_block = unet_config.get("layers_per_block", 2)
    depth = unet_config.get("transformer_layers_per_block", 1)
    reversed_channels = channels[::-1]
    reversed_depth = (list(depth) if isinstance(depth, (list, tuple)) else [depth] * len(channels))[::-1]
    per_layer_count = layers_per_block[::-1] if isinstance(layers_per_block, (list, tuple)) \
        else [layers_per_block] * len(channels)
    latent_h, latent_w = height // vae_scale_factor, width // vae_scale_factor
    total = 0
    for index, block_type in enumerate(up_types):
        # Decoder block i works at 1/2**(n-1-i) of the latent size (one upsample per block).
        scale = 2 ** (len(up_types) - 1 - index)
        if "CrossAttn" not in block_type or (blocks is not None and index not in blocks):
            continue
        tokens = (latent_h // scale) * (latent_w // scale)
        total += tokens * reversed_channels[index] * reversed_depth[index] * (per_layer_count[index] + 1)
    return total * (2 if guidance else 1) * bytes_per_value
