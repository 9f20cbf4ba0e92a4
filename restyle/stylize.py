"""Keyframe stylizers: the interface, and built-in looks that need no model weights.

A stylizer turns one RGB frame into its stylized version.  Backends register themselves in
:data:`BACKENDS`; the workflow asks :func:`make_stylizer` for one by the name in the config.
The built-in backend is a set of OpenCV non-photorealistic filters: deterministic, CPU-only,
and strong enough that stylizing every frame independently visibly flickers, which is the
problem the rest of restyle removes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np


class Stylizer(Protocol):
    """Anything that restyles a keyframe.

    ``frame_index`` lets backends vary per keyframe (seeds, prompt overrides) while staying
    deterministic: the same frame and index always give the same bytes.
    """

    def __call__(self, frame: np.ndarray, frame_index: int) -> np.ndarray: ...


def kuwahara(image: np.ndarray, radius: int = 4) -> np.ndarray:
    """Kuwahara filter: each pixel takes the mean of its least-varied quadrant.

    Flattens texture into paint-like patches while keeping edges; the classic oil-paint
    filter.  Uses box filters, so its cost does not depend on ``radius``.
    """
    image_f = image.astype(np.float32)
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    size = (radius + 1, radius + 1)
    best_var = None
    best_mean = None
    for anchor in ((0, 0), (radius, 0), (0, radius), (radius, radius)):
        box = dict(ksize=size, anchor=anchor, borderType=cv2.BORDER_REFLECT)
        mean = cv2.boxFilter(image_f, -1, **box)
        var = cv2.boxFilter(luma * luma, -1, **box) - cv2.boxFilter(luma, -1, **box) ** 2
        if best_var is None:
            best_var, best_mean = var, mean
        else:
            better = var < best_var
            best_var = np.where(better, var, best_var)
            best_mean = np.where(better[..., None], mean, best_mean)
    return np.clip(np.rint(best_mean), 0, 255).astype(np.uint8)


def _boost_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def oil(frame: np.ndarray) -> np.ndarray:
    """Thick flat strokes with saturated colour."""
    return _boost_saturation(kuwahara(kuwahara(frame, 5), 3), 1.35)


def watercolor(frame: np.ndarray) -> np.ndarray:
    """Soft washes with preserved edges (OpenCV's edge-aware stylization)."""
    return cv2.stylization(frame, sigma_s=60, sigma_r=0.45)


def pencil(frame: np.ndarray) -> np.ndarray:
    """Coloured pencil hatching."""
    _, color = cv2.pencilSketch(frame, sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return color


def cartoon(frame: np.ndarray) -> np.ndarray:
    """Flat posterised colour regions with dark ink outlines (anime-like cel look)."""
    smooth = frame
    for _ in range(3):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    levels = 6
    step = 256 // levels
    flat = (smooth // step) * step + step // 2
    gray = cv2.medianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 5)
    ink = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 4)
    return np.where(ink[..., None] > 0, flat, flat // 4).astype(np.uint8)


def detail(frame: np.ndarray) -> np.ndarray:
    """Exaggerated local contrast, a hyper-real painted look."""
    return cv2.detailEnhance(frame, sigma_s=10, sigma_r=0.15)


LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "oil": oil,
    "watercolor": watercolor,
    "pencil": pencil,
    "cartoon": cartoon,
    "detail": detail,
}


class BuiltinStylizer:
    """One of the named OpenCV looks in :data:`LOOKS`."""

    def __init__(self, look: str):
        if look not in LOOKS:
            raise ValueError(f"unknown built-in look {look!r}; use one of {sorted(LOOKS)}")
        self.look = look

    def __call__(self, frame: np.ndarray, frame_index: int) -> np.ndarray:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")
        return LOOKS[self.look](np.ascontiguousarray(frame))


def diffusion_stylizer(model: str | None, controlnet: str | None, controlnet_scale: float,
                       **options) -> Stylizer:
    """The diffusion backend (needs the ``diffusion`` extra), with the config's option names.

    ``model`` is a local diffusers directory or ``.safetensors`` checkpoint, ``controlnet``
    a local ControlNet directory; everything else goes to
    :class:`restyle.diffusion.DiffusionStylizer` as is.
    """
    try:
        from restyle.diffusion import DiffusionStylizer
    except ImportError as error:
        raise ImportError(f"the diffusion stylizer needs PyTorch and diffusers ({error.name} is missing): "
                          "pip install -e '.[diffusion]'") from None
    if not model:
        raise ValueError("the diffusion stylizer needs stylizer.model: a local diffusers directory or .safetensors file")
    return DiffusionStylizer(model, controlnet_path=controlnet, controlnet_conditioning_scale=controlnet_scale,
                             **options)


BACKENDS: dict[str, Callable[..., Stylizer]] = {"builtin": BuiltinStylizer, "diffusion": diffusion_stylizer}


# Where a keyframe's look comes from (see :func:`keyframe_source`).
PAINTED, STYLIZER, SCENE_BATCH, BASE_RECORD, OVERRIDE = "painted", "stylizer", "scene_batch", "base_record", "override"


def keyframe_source(backend: str, painted: bool, scene_batch: bool, override: dict | None) -> str:
    """How one keyframe is styled: the one place that decides it.

    ``"painted"``: the user's painted file, whatever the backend.  Else with the builtin
    backend ``"stylizer"``: the look applied to the frame.  With diffusion: ``"scene_batch"``
    when a scene's keyframes are denoised together (latent deflickering), else
    ``"base_record"`` (the image the keyframe's record job made with the base settings) or,
    with a per-keyframe ``override``, ``"override"``: a run of its own (on a GPU) that attends
    to the scene's records.
    """
    if painted:
        return PAINTED
    if backend != "diffusion":
        return STYLIZER
    if scene_batch:
        return SCENE_BATCH
    return BASE_RECORD if override is None else OVERRIDE


def make_stylizer(backend: str, **options) -> Stylizer:
    """The stylizer ``backend`` configured with ``options`` (e.g. ``look="oil"``)."""
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown stylizer {backend!r}; use one of {sorted(BACKENDS)}") from None
    return factory(**options)
