"""Regenerate ``demo/demo.mp4``, the bundled demo clip, from photographs shipped in scikit-image.

The clip exercises what the pipeline has to cope with in real footage, using real photographs
(see ``demo/README.md`` for sources and licenses):

* shot 1 (frames 0-43): a camera pans right over an espresso cup on a wooden table while slowly
  zooming in, and a soft-edged cutout of a cat's head slides across the frame on its own path;
* one hard cut at frame 44;
* shot 2 (frames 44-83): the camera tilts up a rocket on its launch pad while zooming out;
* a stereo chord sequence as audio, changing chord on the cut.

24 fps, 384x256, 3.5 s.  All motion is sub-pixel smooth (float affine transforms) and the
output is byte-for-byte deterministic.  Needs ``scikit-image`` (the ``demo`` extra).

Usage::

    python demo/make_demo.py [--out demo/demo.mp4]
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

from restyle.video import write_video

WIDTH, HEIGHT = 384, 256
FPS = Fraction(24)
N_FRAMES = 84
CUT_AT = 44  # first frame of shot 2
AUDIO_RATE = 48_000
CRF = 16  # a clean source for restyling; still well under the 2 MB budget


# ---------------------------------------------------------------------------------- motion


def ease(t: float) -> float:
    """Position along a move for progress ``t`` in [0, 1]: half linear, half smoothstep, so
    the camera starts and stops gently but never stands still."""
    t = min(max(t, 0.0), 1.0)
    return 0.5 * t + 0.5 * t * t * (3 - 2 * t)


def lerp(a, b, t):
    return a + (b - a) * t


def camera_matrix(center: tuple[float, float], scale: float) -> np.ndarray:
    """Affine map from output pixel to photo pixel for a crop window centred on ``center``
    (photo pixels), ``scale`` photo pixels per output pixel.  Pixel centres sit at integer
    coordinates, hence the half-pixel terms."""
    cx, cy = center
    return np.float64([[scale, 0, cx - scale * WIDTH / 2 + (scale - 1) / 2],
                       [0, scale, cy - scale * HEIGHT / 2 + (scale - 1) / 2]])


def film(photo: np.ndarray, center: tuple[float, float], scale: float) -> np.ndarray:
    """What the virtual camera sees, float32 (H, W, 3)."""
    return cv2.warpAffine(photo, camera_matrix(center, scale), (WIDTH, HEIGHT),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def prefilter(photo: np.ndarray, max_scale: float) -> np.ndarray:
    """Blur just enough that sampling at ``max_scale`` photo pixels per output pixel does not
    alias (cubic interpolation alone is a poor low-pass when shrinking)."""
    sigma = 0.45 * max(max_scale - 1.0, 0.0) + 0.3
    return cv2.GaussianBlur(photo.astype(np.float32), (0, 0), sigma)


# ---------------------------------------------------------------------------------- sprite


def cat_head_sprite(width: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The cat's head from ``skimage.data.chelsea()`` with a soft elliptical matte.

    Returns the colour (float32 (h, w, 3)) and alpha (float32 (h, w, 1)), with transparent
    margins so the sprite can rotate without clipping.
    """
    cat = data.chelsea().astype(np.float32)
    h, w = cat.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Head: centred between the eyes, from the ears down to the chin.
    r = np.sqrt(((xx - 232) / 165) ** 2 + ((yy - 160) / 140) ** 2)
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0)  # feathered over the outer 12 % of the radius
    alpha = cv2.GaussianBlur(alpha, (0, 0), 3)
    y0, y1, x0, x1 = 10, 300, 62, 402
    cat, alpha = cat[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    scale = width / cat.shape[1]
    size = (width, round(cat.shape[0] * scale))
    cat = cv2.resize(cat, size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    pad = width // 4
    cat = cv2.copyMakeBorder(cat, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return cat, alpha[..., None]


def composite(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, position: tuple[float, float],
              angle_deg: float) -> np.ndarray:
    """Paste ``sprite`` with its centre at sub-pixel ``position`` (output pixels), rotated."""
    h, w = sprite.shape[:2]
    to_frame = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, 1.0)
    to_frame[:, 2] += np.float64(position) - ((w - 1) / 2, (h - 1) / 2)
    colour = cv2.warpAffine(sprite, to_frame, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    matte = cv2.warpAffine(alpha, to_frame, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    return frame * (1 - matte) + colour * matte


# ---------------------------------------------------------------------------------- frames


def render_frames() -> list[np.ndarray]:
    """All frames of the demo clip, uint8 (H, W, 3) RGB."""
    coffee = prefilter(data.coffee(), 1.25)  # 600x400
    rocket = prefilter(data.rocket(), 1.40)  # 640x427
    cat, cat_alpha = cat_head_sprite()
    shot1_len, shot2_len = CUT_AT, N_FRAMES - CUT_AT
    frames = []
    for i in range(N_FRAMES):
        if i < CUT_AT:
            # Shot 1: pan right and a little up the table, zooming in from 1.25 to 1.05.
            t = ease(i / (shot1_len - 1))
            image = film(coffee, (lerp(262.0, 342.0, t), lerp(212.0, 196.0, t)), lerp(1.25, 1.05, t))
            # The cat's head crosses at its own pace (linear, ~10 px/frame), bobbing and tilting.
            u = i / (shot1_len - 1)
            position = (lerp(-20.0, WIDTH + 10.0, u), 150.0 - 28.0 * np.sin(np.pi * u) + 4.0 * np.sin(6.0 * u))
            image = composite(image, cat, cat_alpha, position, angle_deg=8.0 * np.sin(2 * np.pi * u))
        else:
            # Shot 2: tilt up the rocket from the pad lights to the nose, zooming out 1.0 -> 1.4.
            t = ease((i - CUT_AT) / (shot2_len - 1))
            image = film(rocket, (lerp(318.0, 326.0, t), lerp(292.0, 205.0, t)), lerp(1.0, 1.4, t))
        frames.append(np.clip(image + 0.5, 0, 255).astype(np.uint8))
    return frames


# ---------------------------------------------------------------------------------- audio


def note(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


# (start frame, MIDI notes low to high): Cmaj7, Am7, then on the cut Fmaj7, G6.
CHORDS = [(0, [48, 64, 67, 71, 76]), (22, [45, 60, 64, 67, 72]),
          (CUT_AT, [41, 60, 64, 69, 72]), (64, [43, 59, 62, 67, 71])]


def render_audio(duration_s: float) -> np.ndarray:
    """A soft stereo chord sequence (electric-piano-like tones), float32 (2, n) in [-1, 1]."""
    n = round(duration_s * AUDIO_RATE)
    out = np.zeros((2, n), np.float64)
    bounds = [float(start / FPS) for start, _ in CHORDS] + [duration_s]
    for (_, notes), t0, t1 in zip(CHORDS, bounds[:-1], bounds[1:]):
        a, b = round(t0 * AUDIO_RATE), min(n, round((t1 + 0.25) * AUDIO_RATE))  # ring 0.25 s on
        t = np.arange(b - a) / AUDIO_RATE
        attack = np.minimum(t / 0.015, 1.0)  # 15 ms: no click
        release = np.clip((t1 - t0 + 0.25 - t) / 0.25, 0.0, 1.0)  # fade while the next chord starts
        for v, midi in enumerate(notes):
            f = note(midi)
            tone = np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t) * np.exp(-t / 0.3)
            envelope = attack * np.exp(-t / (1.6 if v == 0 else 1.1)) * release
            pan = 0.5 if v == 0 else 0.15 + 0.7 * (v - 1) / (len(notes) - 2)  # bass centred, chord spread
            gain = 0.9 if v == 0 else 0.55
            out[0, a:b] += gain * np.cos(pan * np.pi / 2) * tone * envelope
            out[1, a:b] += gain * np.sin(pan * np.pi / 2) * tone * envelope
    fade = np.clip((duration_s - np.arange(n) / AUDIO_RATE) / 0.3, 0.0, 1.0)  # fade out at the end
    out *= fade
    out *= 0.35 / np.abs(out).max()
    return out.astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit PCM WAV, the lossless hand-over to write_video (which encodes it to AAC once)."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("demo.mp4"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "chords.wav"
        write_wav(audio, render_audio(float(N_FRAMES / FPS)))
        n = write_video(args.out, render_frames(), FPS, audio_source=audio, crf=CRF)
    print(f"wrote {args.out}: {n} frames {WIDTH}x{HEIGHT} @ {FPS} fps, cut at frame {CUT_AT}, "
          f"{args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
