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

Using this package needs torch and diffusers; :mod:`restyle.stylize` should import it
lazily so the core package works without them.  Its names load on first use, so that
Snakemake's parse-time check of the model files (:func:`loading.check_model_files`, in every
job of a diffusion run) does not import PyTorch.
"""

import importlib

_HOMES = {
    "AttentionRecord": "attention",
    "CrossFrameAttnProcessor": "attention",
    "cross_frame_attention": "attention",
    "record_size_bytes": "attention",
    "SCHEDULERS": "loading",
    "DiffusionModelError": "loading",
    "load_pipeline": "loading",
    "DiffusionStylizer": "stylizer",
    "torch_settings": "stylizer",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
