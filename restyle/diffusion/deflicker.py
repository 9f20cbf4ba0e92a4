"""Latent in-iteration deflickering of a batch of keyframes (after DiffSynth: Duan et al.,
"DiffSynth: Latent In-Iteration Deflickering for Realistic Video Synthesis", 2023,
arXiv:2308.03463).

Keyframes denoised side by side still drift apart step after step: each step's small
disagreements are the starting point of the next.  DiffSynth removes the disagreement
*inside* the denoising loop: at chosen steps it decodes every frame's current estimate of
the clean image, makes the frames agree with each other, encodes them back and carries on,
so flicker never accumulates.

Here the agreement step aligns each frame's neighbours to it by optical flow computed on the
*input* frames (reliable, unlike flow on half-denoised images), and blends the aligned
neighbours in where the forward-backward check trusts the flow -- DiffSynth's "remap and
average", with flow warping in place of its patch matching.

The pieces are pure functions, composable with any diffusers img2img pipeline:

* :func:`align_frames` -- flows and validity masks between neighbouring input frames;
* :func:`blend_aligned` -- numpy images -> images where neighbours agree;
* :func:`deflicker_x0` -- the same on a batch of latents, through VAE decode/encode;
* :func:`latent_deflicker` -- a context manager that applies :func:`deflicker_x0` to the
  predicted clean latents at chosen steps of a pipeline call, by wrapping its scheduler's
  ``step`` (so SD, SDXL and ControlNet pipelines all work unchanged).

The estimate that is deflickered is the predicted ``x0``, not the noisy latent: a VAE does
not represent noise, and the fix must not disturb the noise the scheduler expects.  The
model output is rewritten so that the scheduler sees the deflickered ``x0`` with the same
noise (DiffSynth's "return to timestep").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from restyle.flow import compute_flow, occlusion_mask, warp

from . import vae


@dataclass
class FrameAlignment:
    """How each frame of a batch sees its neighbours.

    Attributes
    ----------
    size : (int, int)
        ``(height, width)`` the flows are computed at.
    neighbours : list of list of (int, ndarray, ndarray)
        For frame ``i``: ``(j, flow_ij, valid_ij)`` with ``flow_ij`` float32 (H, W, 2) from
        frame ``i`` to frame ``j`` and ``valid_ij`` bool (H, W), True where frame ``j``'s
        content warped into frame ``i`` can be trusted.
    """

    size: tuple[int, int]
    neighbours: list[list[tuple[int, np.ndarray, np.ndarray]]]


def align_frames(frames: Sequence[np.ndarray], radius: int, preset: str,
                 size: tuple[int, int] | None = None) -> FrameAlignment:
    """Flows between each input frame and its neighbours within ``radius`` positions.

    Parameters
    ----------
    frames : sequence of ndarray, uint8 (H, W, 3)
        The *input* keyframes of one scene, in order.
    radius : int
        How many neighbours on each side blend into a frame.
    preset : str
        DIS preset for :func:`restyle.flow.compute_flow`.
    size : (int, int), optional
        Compute at this ``(height, width)`` (the size the decoded estimates will have).

    Returns
    -------
    FrameAlignment
    """
    if size is not None:
        frames = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) if f.shape[:2] != tuple(size)
                  else f for f in frames]
    height, width = frames[0].shape[:2]
    flows: dict[tuple[int, int], np.ndarray] = {}

    def flow(i, j):
        if (i, j) not in flows:
            flows[(i, j)] = compute_flow(frames[i], frames[j], preset)
        return flows[(i, j)]

    neighbours = []
    for i in range(len(frames)):
        row = []
        for j in range(max(0, i - radius), min(len(frames), i + radius + 1)):
            if j != i:
                forward = flow(i, j)
                row.append((j, forward, ~occlusion_mask(forward, flow(j, i))))
        neighbours.append(row)
    return FrameAlignment((height, width), neighbours)


def blend_aligned(images: Sequence[np.ndarray], alignment: FrameAlignment, weight: float) -> list[np.ndarray]:
    """Average every image with its flow-aligned neighbours where the flow is trusted.

    ``out_i = (img_i + weight * sum_j valid_ij * warp(img_j, flow_ij)) / (1 + weight * sum_j valid_ij)``:
    with ``weight = 1`` a frame and a trusted neighbour count equally (DiffSynth's
    ``(frame1 + frame2_to_1) / 2``); ``weight = 0`` returns the images unchanged.  Occluded
    pixels keep the frame's own content.

    Parameters
    ----------
    images : sequence of ndarray, (H, W, C), uint8 or float
        One per frame, at ``alignment.size``.
    alignment : FrameAlignment
    weight : float
        Weight of each trusted neighbour relative to the frame itself.

    Returns
    -------
    list of ndarray, float32 (H, W, C)
    """
    if len(images) != len(alignment.neighbours):
        raise ValueError(f"{len(images)} images for an alignment of {len(alignment.neighbours)} frames")
    floats = [np.asarray(image, np.float32) for image in images]
    blended = []
    for i, image in enumerate(floats):
        if image.shape[:2] != alignment.size:
            raise ValueError(f"image {i} is {image.shape[:2]}, the alignment is {alignment.size}")
        total = image.copy()
        count = np.ones(image.shape[:2] + (1,), np.float32)
        for j, flow_ij, valid_ij in alignment.neighbours[i]:
            trust = weight * valid_ij[..., None].astype(np.float32)
            total += trust * warp(floats[j], flow_ij)
            count += trust
        blended.append(total / count)
    return blended


def vae_codec(pipeline) -> tuple[Callable[[torch.Tensor], np.ndarray], Callable[[np.ndarray], torch.Tensor]]:
    """``(decode, encode)`` between a pipeline's latents and float RGB images in [0, 1].

    ``decode`` maps latents (B, C, h, w) to float32 (B, H, W, 3); ``encode`` maps such an
    array back to latents on the UNet's device and dtype (see :mod:`restyle.diffusion.vae`).
    """

    def decode(latents: torch.Tensor) -> np.ndarray:
        pixels = vae.decode(pipeline, latents)
        return ((pixels.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()

    def encode(images: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2) * 2 - 1
        return vae.encode(pipeline, pixels)

    return decode, encode


def deflicker_x0(x0: torch.Tensor, alignment: FrameAlignment, decode: Callable, encode: Callable,
                 weight: float) -> torch.Tensor:
    """Decode a batch of clean-latent estimates, blend them across frames, encode them back.

    Parameters
    ----------
    x0 : Tensor (B, C, h, w)
        Predicted clean latents, one per frame of ``alignment``, in frame order.
    alignment : FrameAlignment
        From :func:`align_frames` at the decoded image size.
    decode, encode : callables
        From :func:`vae_codec`.
    weight : float
        See :func:`blend_aligned`.

    Returns
    -------
    Tensor like ``x0``
    """
    images = decode(x0)
    blended = np.stack(blend_aligned(list(images), alignment, weight))
    return encode(blended).to(x0.device, x0.dtype)


def _alpha_terms(scheduler, timestep, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sqrt(alpha_bar_t)`` and ``sqrt(1 - alpha_bar_t)`` of a variance-preserving scheduler."""
    if hasattr(scheduler, "sigmas") and type(scheduler).__name__.startswith(("Euler", "LMS", "Heun", "KDPM")):
        raise ValueError(f"latent deflickering needs a DDIM-family scheduler (x_t = a x0 + b noise), "
                         f"not {type(scheduler).__name__}; use scheduler='ddim'")
    t = int(timestep.flatten()[0]) if torch.is_tensor(timestep) else int(timestep)
    alpha_bar = scheduler.alphas_cumprod[t].to(like.device, torch.float32)
    return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()


@contextlib.contextmanager
def latent_deflicker(pipeline, alignment: FrameAlignment, at_steps: Sequence[int], weight: float):
    """Deflicker the predicted ``x0`` at steps ``at_steps`` of pipeline calls made inside.

    Wraps ``pipeline.scheduler.step``: at a chosen step (0-based among the steps the call
    runs) it computes ``x0`` from the guided model output, replaces it with
    :func:`deflicker_x0`'s result, rewrites the model output to match (same noise), and lets
    the scheduler step as usual.  The batch of the call must be the frames of
    ``alignment`` in order.

    Example
    -------
    >>> alignment = align_frames(frames, 1, "medium", size=(height, width))  # doctest: +SKIP
    >>> with latent_deflicker(pipe, alignment, at_steps=(2, 5, 8), weight=1.0):  # doctest: +SKIP
    ...     images = pipe(prompt=[p] * len(frames), image=latents, ...).images
    """
    scheduler = pipeline.scheduler
    original_step = scheduler.step
    chosen = {int(s) for s in at_steps}
    decode, encode = vae_codec(pipeline)
    counter = {"step": 0}
    prediction = scheduler.config.get("prediction_type", "epsilon")

    def step(model_output, timestep, sample, *args, **kwargs):
        index = counter["step"]
        counter["step"] += 1
        if index in chosen:
            a, b = _alpha_terms(scheduler, timestep, sample)
            x_t, output = sample.float(), model_output.float()
            if prediction == "epsilon":
                x0 = (x_t - b * output) / a
            elif prediction == "v_prediction":
                x0 = a * x_t - b * output
            else:  # "sample": the model predicts x0 directly
                x0 = output
            with torch.inference_mode():
                target = deflicker_x0(x0.to(sample.dtype), alignment, decode, encode, weight).float()
            if prediction == "epsilon":
                output = (x_t - a * target) / b
            elif prediction == "v_prediction":
                output = (a * x_t - target) / b
            else:
                output = target
            model_output = output.to(model_output.dtype)
        return original_step(model_output, timestep, sample, *args, **kwargs)

    scheduler.step = step
    try:
        yield
    finally:
        # The instance attribute shadows the class method; removing it restores the original.
        del scheduler.step
