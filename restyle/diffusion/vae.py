"""The VAE between pixels and the latents a pipeline's UNet denoises, both ways.

Encoding takes the posterior *mean*, not a sample, so nothing in it is random (DiffSynth's
deterministic VAE; Duan et al. 2023, arXiv:2308.03463).  Latents are scaled as the
pipeline's own img2img preparation scales them: by the VAE's ``scaling_factor``, after
normalising by ``latents_mean``/``latents_std`` where the VAE's config has them (Rombach et
al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022,
arXiv:2112.10752).

A half-precision VAE whose config sets ``force_upcast`` (SDXL's overflows in fp16 and gives
NaNs) runs in fp32 for the call and is put back to fp16 after it, as diffusers' SDXL
pipelines do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def _precision(vae) -> Iterator[torch.dtype]:
    """The dtype to run ``vae`` in for one call; an fp16 VAE that asks for it is upcast meanwhile."""
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if not upcast:
        yield vae.dtype
        return
    vae.to(torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(torch.float16)


def _latent_stats(config, like: torch.Tensor, dtype: torch.dtype | None = None):
    """``(mean, std)`` of the VAE's latent channels as (1, C, 1, 1) tensors, or None without them."""
    if getattr(config, "latents_mean", None) is None or getattr(config, "latents_std", None) is None:
        return None
    mean = torch.tensor(config.latents_mean, device=like.device, dtype=dtype).view(1, -1, 1, 1)
    std = torch.tensor(config.latents_std, device=like.device, dtype=dtype).view(1, -1, 1, 1)
    return mean, std


def encode(pipeline, pixels: torch.Tensor) -> torch.Tensor:
    """Latents of ``pixels`` (posterior mean), on the UNet's device and in its dtype.

    Parameters
    ----------
    pipeline : diffusers img2img pipeline
    pixels : Tensor (B, 3, H, W), float in [-1, 1]

    Returns
    -------
    Tensor (B, C, H / f, W / f), ``f`` the pipeline's ``vae_scale_factor``
    """
    vae = pipeline.vae
    with _precision(vae) as dtype:
        latents = vae.encode(pixels.to(vae.device, dtype)).latent_dist.mean
    config = vae.config
    stats = _latent_stats(config, latents)
    if stats is None:
        latents = latents * config.scaling_factor
    else:
        mean, std = stats
        latents = (latents - mean) * config.scaling_factor / std
    return latents.to(pipeline.unet.dtype)


def decode(pipeline, latents: torch.Tensor) -> torch.Tensor:
    """Pixels of ``latents`` (the inverse scaling of :func:`encode`).

    Parameters
    ----------
    pipeline : diffusers img2img pipeline
    latents : Tensor (B, C, h, w)

    Returns
    -------
    Tensor (B, 3, H, W), float32, nominally in [-1, 1] (not clamped), on the VAE's device
    """
    vae = pipeline.vae
    config = vae.config
    with _precision(vae) as dtype:
        latents = latents.to(vae.device, dtype)
        # In the latents' own dtype: the VAE takes its input in its dtype.
        stats = _latent_stats(config, latents, latents.dtype)
        if stats is None:
            latents = latents / config.scaling_factor
        else:
            mean, std = stats
            latents = latents * std / config.scaling_factor + mean
        return vae.decode(latents).sample.float()
