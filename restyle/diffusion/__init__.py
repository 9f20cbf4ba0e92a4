"""Diffusion keyframe stylizer (optional extra: ``pip install restyle[diffusion]``).

* :mod:`~restyle.diffusion.loading` -- offline, safetensors-only loading of SD 1.x/2.x and
  SDXL img2img pipelines (plus ControlNet);
* :mod:`~restyle.diffusion.vae` -- pixels to latents and back, deterministically;
* :mod:`~restyle.diffusion.attention` -- cross-frame attention that records a keyframe's
  decoder self-attention inputs and lets later keyframes attend to them, across jobs;
* :mod:`~restyle.diffusion.stylizer` -- :class:`DiffusionStylizer`, the
  :class:`restyle.stylize.Stylizer` built on them, and :func:`torch_settings`;
* :mod:`~restyle.diffusion.deflicker` -- DiffSynth-style latent in-iteration deflickering
  of a batch of keyframes.

Importing this package needs torch and diffusers; :mod:`restyle.stylize` should import it
lazily so the core package works without them.
"""

from .attention import (
    AttentionRecord,
    CrossFrameAttnProcessor,
    cross_frame_attention,
    record_size_bytes,
)
from .loading import SCHEDULERS, DiffusionModelError, load_pipeline
from .stylizer import DiffusionStylizer, torch_settings

__all__ = [
    "SCHEDULERS",
    "AttentionRecord",
    "CrossFrameAttnProcessor",
    "DiffusionModelError",
    "DiffusionStylizer",
    "cross_frame_attention",
    "load_pipeline",
    "record_size_bytes",
    "torch_settings",
]
