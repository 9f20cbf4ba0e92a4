"""Diffusion keyframe stylizer (optional extra: ``pip install restyle[diffusion]``).

* :mod:`~restyle.diffusion.loading` -- offline, safetensors-only loading of SD 1.x/2.x and
  SDXL img2img pipelines (plus ControlNet);
* :mod:`~restyle.diffusion.attention` -- cross-frame attention that records a keyframe's
  decoder self-attention inputs and lets later keyframes attend to them, across jobs;
* :mod:`~restyle.diffusion.stylizer` -- :class:`DiffusionStylizer`, the
  :class:`restyle.stylize.Stylizer` built on them;
* :mod:`~restyle.diffusion.deflicker` -- DiffSynth-style latent in-iteration deflickering
  of a batch of keyframes.

Importing this package needs torch and diffusers; :mod:`restyle.stylize` should import it
lazily so the core package works without them.
"""

from .attention import (
    AttentionRecord,
    CrossFrameAttnProcessor,
    install_cross_frame_attention,
)
from .loading import SCHEDULERS, DiffusionModelError, load_pipeline
from .stylizer import (
    DiffusionStylizer,
    keyframe_reference_paths,
    make_diffusion_stylizer,
)

__all__ = [
    "SCHEDULERS",
    "AttentionRecord",
    "CrossFrameAttnProcessor",
    "DiffusionModelError",
    "DiffusionStylizer",
    "install_cross_frame_attention",
    "keyframe_reference_paths",
    "load_pipeline",
    "make_diffusion_stylizer",
]
