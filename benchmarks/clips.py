"""Deterministic test clips made from real photographs, for benchmarks and experiments.

Every clip is built in memory by :func:`make_clip` as uint8 (N, H, W, 3) RGB frames, at any
size (384x256 by default; 512x512 and 1920x1080 work too: the photographs, about 512 px,
are scaled up with cubic interpolation, which is fine for speed measurements).  All motion
is smooth and sub-pixel (float affine warps of the photographs, eased camera paths), each
clip is a single shot unless its name says otherwise, and the same call always gives the
same bytes.

=================  ================================  =======================================
name               source                            motion
=================  ================================  =======================================
demo               ``demo/demo.mp4``, shot 1          camera pans right over an espresso cup
                   (frames 0-43)                     while zooming in; a cat's head cutout
                                                     slides across left to right
demo_both_shots    ``demo/demo.mp4``, all 84 frames  as ``demo``, then a hard cut at frame 44
                                                     to a tilt up a rocket while zooming out
astronaut          ``astronaut()``; cutout of the    camera pans right and down while zooming
                   cup from ``coffee()``             in; the cup crosses right to left,
                                                     bobbing and turning, occluding and
                                                     revealing the background
coffee_cat         ``coffee()``; cutout of the cat   camera pans left and tilts down while
                   head from ``chelsea()``           zooming out; the cat's head crosses
                                                     right to left (against the pan), so
                                                     the table behind it is revealed
rocket_tilt        ``rocket()``                      camera tilts up from the pad to the nose
                                                     while zooming out and rolling 3 degrees
camera_rotate      ``camera()`` (grey)               camera turns 10 degrees about the centre
                                                     while zooming in and drifting
=================  ================================  =======================================

The photographs are the sample data shipped inside scikit-image (``skimage.data``), which
its documentation lists as free of copyright restrictions: ``coffee``, ``chelsea`` and
``camera`` (photo by Lav Varshney) are CC0, ``rocket`` (SpaceX) and ``astronaut`` (NASA)
are public domain; see ``demo/README.md`` for the demo's.  Needs
scikit-image, the ``demo`` extra: ``pip install -e ".[demo]"``.

Usage::

    from clips import CLIPS, make_clip          # from benchmarks/, or with it on sys.path
    frames = make_clip("astronaut", width=512, height=512)
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from restyle.video import read_frames  # noqa: E402

DEMO = REPO / "demo" / "demo.mp4"
DEMO_SHOT_1 = 44  # frames 0-43 of the demo are its first shot
DEFAULT_FRAMES = 96
# Applied to a clip's photographs before they are filmed (uint8 RGB in, uint8 RGB out).
Paint = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------- sources


def _skimage_data():
    try:
        from skimage import data
    except ImportError:
        raise ImportError('these clips need scikit-image: pip install -e ".[demo]"') from None
    return data


@functools.lru_cache(maxsize=None)
def _photo(name: str, paint: Paint | None = None) -> np.ndarray:
    """``skimage.data.<name>()`` as float32 (h, w, 3) RGB (grey photos repeated), read-only;
    ``paint`` (uint8 RGB -> uint8 RGB) applied to the photograph first."""
    image = getattr(_skimage_data(), name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    if paint is not None:
        image = paint(image)
    image = np.ascontiguousarray(image, dtype=np.float32)
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=None)
def _cutout(name: str, centre: tuple[float, float], radii: tuple[float, float],
            paint: Paint | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An elliptical soft-edged cutout of a photograph: colour float32 (h, w, 3) and matte
    float32 (h, w), cropped around the ellipse with a transparent margin (so it can turn)."""
    photo = _photo(name, paint)
    h, w = photo.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2)
    matte = cv2.GaussianBlur(np.clip((1.0 - r) / 0.12, 0.0, 1.0), (0, 0), 2.0)
    pad = round(0.25 * max(radii))
    x0, x1 = round(centre[0] - radii[0]), round(centre[0] + radii[0]) + 1
    y0, y1 = round(centre[1] - radii[1]), round(centre[1] + radii[1]) + 1
    colour = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    matte = cv2.copyMakeBorder(matte, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    box = np.s_[max(y0, 0):min(y1, h) + 2 * pad, max(x0, 0):min(x1, w) + 2 * pad]
    colour, matte = np.ascontiguousarray(colour[box]), np.ascontiguousarray(matte[box])
    colour.setflags(write=False)
    matte.setflags(write=False)
    return colour, matte


# ---------------------------------------------------------------------------------- motion


def ease(t: float) -> float:
    """Half linear, half smoothstep: moves start and stop gently but never stand still."""
    t = min(max(t, 0.0), 1.0)
    return 0.5 * t + 0.5 * t * t * (3 - 2 * t)


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _antialias(image: np.ndarray, shrink: float) -> np.ndarray:
    """Blur just enough that sampling ``shrink`` source pixels per output pixel does not alias."""
    return cv2.GaussianBlur(image, (0, 0), 0.45 * max(shrink - 1.0, 0.0) + 0.3)


def film(photo: np.ndarray, size: tuple[int, int], pan: tuple[float, float], zoom: float,
         angle_deg: float = 0.0) -> np.ndarray:
    """What a virtual camera sees of ``photo``, float32 (H, W, 3) for ``size`` = (W, H).

    ``zoom`` is the view's size relative to the largest upright view of the frame's aspect
    that fits in the photo (1 = all of it; smaller is closer); ``pan`` places the view in
    the room left over, (0, 0) top-left to (1, 1) bottom-right, so the (possibly turned)
    view always stays inside the photo.  Pixel centres sit at integer coordinates.
    """
    width, height = size
    ph, pw = photo.shape[:2]
    scale = zoom * min(pw / width, ph / height)  # photo pixels per output pixel
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    half_w, half_h = scale * width / 2, scale * height / 2
    reach_x, reach_y = abs(c) * half_w + abs(s) * half_h, abs(s) * half_w + abs(c) * half_h
    cx = -0.5 + reach_x + pan[0] * max(pw - 2 * reach_x, 0.0)
    cy = -0.5 + reach_y + pan[1] * max(ph - 2 * reach_y, 0.0)
    ox, oy = (width - 1) / 2, (height - 1) / 2
    to_photo = np.float64([[scale * c, -scale * s, cx - scale * (c * ox - s * oy)],
                           [scale * s, scale * c, cy - scale * (s * ox + c * oy)]])
    return cv2.warpAffine(_antialias(photo, scale), to_photo, size,
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def composite(frame: np.ndarray, cutout: tuple[np.ndarray, np.ndarray], position: tuple[float, float],
              height_px: float, angle_deg: float) -> np.ndarray:
    """Paste ``cutout`` (colour, matte) over ``frame`` in place: its centre at sub-pixel
    ``position`` (output pixels), its ellipse ``height_px`` tall (margin excluded), turned."""
    colour, matte = cutout
    h, w = matte.shape
    rows = np.flatnonzero(matte.max(axis=1) > 0)
    scale = height_px / max(rows[-1] - rows[0] + 1, 1)
    to_frame = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
    to_frame[:, 2] += np.float64(position) - ((w - 1) / 2, (h - 1) / 2)
    # Only the window the turned cutout can touch is warped and blended.
    corners = to_frame @ np.float64([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]])
    x0, y0 = np.maximum(np.floor(corners.min(axis=1)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=1)).astype(int) + 3, (frame.shape[1], frame.shape[0]))
    if x0 >= x1 or y0 >= y1:
        return frame
    to_frame[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    colour = cv2.warpAffine(_antialias(colour, 1 / scale), to_frame, size, flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(matte, to_frame, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    window = frame[y0:y1, x0:x1]
    frame[y0:y1, x0:x1] = window * (1 - alpha) + colour * alpha
    return frame


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------- clips


Builder = Callable[[int, int, int, Paint | None], np.ndarray]


def _render(width: int, height: int, n_frames: int, frame_at: Callable[[float, tuple[int, int]], np.ndarray]) -> np.ndarray:
    """``frame_at(u, size)`` for u = 0..1 over ``n_frames``, as uint8 (N, H, W, 3)."""
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for i in range(n_frames):
        frames[i] = _to_uint8(frame_at(i / max(n_frames - 1, 1), (width, height)))
    return frames


def _shot(photo_name: str, pan_from: tuple[float, float], pan_to: tuple[float, float],
          zoom_from: float, zoom_to: float, angle_from: float = 0.0, angle_to: float = 0.0,
          cutout: dict | None = None) -> Builder:
    """A one-shot clip: one eased camera move (pan, zoom, roll) over a photograph, and
    optionally a cutout crossing it at its own linear pace.

    ``cutout``: ``source`` (photo name, ellipse centre, ellipse radii, in photo pixels),
    ``x`` (from, to: fractions of the frame width), ``y`` (base, bob amplitude, bob
    frequency in half turns over the clip: fractions of the height), ``height`` (fraction
    of the frame height) and ``turn`` (amplitude in degrees, frequency in half turns).
    """
    def build(width: int, height: int, n_frames: int, paint: Paint | None) -> np.ndarray:
        photo = _photo(photo_name, paint)
        sprite = _cutout(*cutout["source"], paint) if cutout else None

        def frame_at(u, size):
            t = ease(u)
            pan = (lerp(pan_from[0], pan_to[0], t), lerp(pan_from[1], pan_to[1], t))
            image = film(photo, size, pan, lerp(zoom_from, zoom_to, t), lerp(angle_from, angle_to, t))
            if sprite is None:
                return image
            (x0, x1), (y, bob, bob_freq), (turn, turn_freq) = cutout["x"], cutout["y"], cutout["turn"]
            position = (lerp(x0, x1, u) * width, (y + bob * math.sin(bob_freq * math.pi * u)) * height)
            angle = turn * math.sin(turn_freq * math.pi * u)
            return composite(image, sprite, position, cutout["height"] * height, angle)

        return _render(width, height, n_frames, frame_at)

    return build


@functools.lru_cache(maxsize=1)
def _demo_frames() -> np.ndarray:
    frames = np.stack(list(read_frames(DEMO)))
    frames.setflags(write=False)
    return frames


def _demo(width: int, height: int, n_frames: int, paint: Paint | None, available: int) -> np.ndarray:
    if paint is not None:
        raise ValueError("the demo clips are filmed, not made from photographs: they cannot be painted first")
    if n_frames > available:
        raise ValueError(f"the demo has {available} frames here, not {n_frames}")
    frames = _demo_frames()[:n_frames]
    h, w = frames.shape[1:3]
    if (w, h) == (width, height):
        return frames.copy()
    shrinking = width <= w and height <= h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation) for frame in frames])


CLIPS: dict[str, Builder] = {
    "demo": functools.partial(_demo, available=DEMO_SHOT_1),
    "demo_both_shots": functools.partial(_demo, available=84),
    # The cup from coffee() crosses right to left, bobbing and turning, while the camera
    # pans right and down over the astronaut and zooms in.
    "astronaut": _shot("astronaut", (0.1, 0.25), (0.9, 0.6), 0.7, 0.5, cutout={
        "source": ("coffee", (290.0, 150.0), (125.0, 135.0)), "x": (1.2, -0.2), "y": (0.55, 0.08, 1.0),
        "height": 0.55, "turn": (10.0, 2.0)}),
    # Chelsea's head crosses right to left, against the camera's pan left and down (zooming out).
    "coffee_cat": _shot("coffee", (0.9, 0.15), (0.1, 0.75), 0.62, 0.82, cutout={
        "source": ("chelsea", (232.0, 160.0), (165.0, 140.0)), "x": (1.25, -0.25), "y": (0.45, -0.1, 2.0),
        "height": 0.6, "turn": (-12.0, 1.0)}),
    "rocket_tilt": _shot("rocket", (0.48, 0.95), (0.52, 0.05), 0.55, 0.75, 0.0, 3.0),
    "camera_rotate": _shot("camera", (0.35, 0.4), (0.6, 0.55), 0.62, 0.5, -5.0, 5.0),
}
# Frames when make_clip is not told: all of the demo's, DEFAULT_FRAMES of the others.
N_FRAMES = {"demo": DEMO_SHOT_1, "demo_both_shots": 84}


def make_clip(name: str, width: int = 384, height: int = 256, n_frames: int | None = None,
              paint: Paint | None = None) -> np.ndarray:
    """The clip ``name`` (see :data:`CLIPS`) as uint8 (N, H, W, 3) RGB frames.

    ``n_frames`` defaults to the whole demo (44 frames of shot 1 for ``demo``, 84 for
    ``demo_both_shots``, which cannot be longer) and to 96 for the photograph clips, whose
    motion is spread over however many frames are asked for (fewer frames, faster motion).

    ``paint`` (a function of a uint8 RGB image, e.g. a look of ``restyle.stylize``) is applied
    to the photographs before they are filmed: the same shot of a painted world, so a look
    that is perfectly steady on this motion (the photograph clips only).
    """
    try:
        builder = CLIPS[name]
    except KeyError:
        raise ValueError(f"unknown clip {name!r}; use one of {sorted(CLIPS)}") from None
    if width < 16 or height < 16:
        raise ValueError(f"clips need at least 16x16 pixels, got {width}x{height}")
    n_frames = N_FRAMES.get(name, DEFAULT_FRAMES) if n_frames is None else n_frames
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    return builder(width, height, n_frames, paint)
