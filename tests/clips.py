"""Tiny synthetic clips for the tests, written straight with PyAV (not with restyle.video, so
the reader is tested against an independent writer).

Everything is deterministic: textures come from a seeded generator and x264 runs on one thread.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

AUDIO_RATE = 48_000


def smooth_texture(rng: np.random.Generator, height: int, width: int, blur_sigma: float,
                   tint: tuple[float, float, float]) -> np.ndarray:
    """Smooth tinted noise in [30, 225], float32 (H, W, 3): textured enough for optical flow,
    smooth enough that H.264 keeps it nearly intact.  Mostly luminance, with a little colour
    noise, because 4:2:0 video halves the colour resolution."""
    noise = rng.standard_normal((height, width, 4)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), blur_sigma)
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
    luma, colour = noise[..., :1], noise[..., 1:]
    return 30 + 195 * (0.75 * luma + 0.25 * colour) * np.asarray(tint, np.float32)


def _pan(texture: np.ndarray, dx: float, dy: float, size: tuple[int, int]) -> np.ndarray:
    """The ``size`` window of ``texture`` whose top-left corner sits at sub-pixel (dx, dy)."""
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(texture, shift, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def synthetic_frames(n_frames: int = 24, size: tuple[int, int] = (96, 64), cut_at: int | None = 12,
                     seed: int = 0) -> np.ndarray:
    """Frames of the synthetic test clip, uint8 (N, H, W, 3) RGB.

    Scene 1 pans over a fine texture at (1.0, 0.4) px/frame; from ``cut_at`` on (a hard cut) a
    coarser, differently tinted texture pans the other way.  A soft bright blob crosses the
    frame at 1.5 px/frame throughout, moving independently of the "camera".
    """
    width, height = size
    rng = np.random.default_rng(seed)
    margin = 2 * n_frames + 8
    first = smooth_texture(rng, height + margin, width + margin, 2.5, (1.0, 0.9, 0.8))
    second = smooth_texture(rng, height + margin, width + margin, 5.0, (0.6, 0.9, 1.1))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n_frames):
        if cut_at is None or i < cut_at:
            image = _pan(first, 1.0 * i, 0.4 * i, size)
        else:
            j = i - cut_at
            image = _pan(second, margin - 4 - 1.0 * j, 0.5 * j, size)
        cx, cy = 0.2 * width + 1.5 * i, 0.5 * height + 3 * np.sin(i / 4)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.08 * width) ** 2))[..., None]
        image = image * (1 - blob) + np.float32([250, 240, 90]) * blob
        frames.append(np.clip(image + 0.5, 0, 255).astype(np.uint8))
    return np.stack(frames)


def stamp_index(frame: np.ndarray, index: int, bits: int = 8) -> np.ndarray:
    """Write ``index`` in binary as black/white blocks along the top edge (for VFR tests)."""
    frame = frame.copy()
    block = frame.shape[1] // bits
    for b in range(bits):
        frame[:8, b * block:(b + 1) * block] = 255 if (index >> b) & 1 else 0
    return frame


def read_index(frame: np.ndarray, bits: int = 8) -> int:
    """Inverse of :func:`stamp_index`, robust to compression noise."""
    block = frame.shape[1] // bits
    return sum(1 << b for b in range(bits) if frame[2:6, b * block + 2:(b + 1) * block - 2].mean() > 127)


def tone(duration_s: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """A quiet stereo two-tone signal, float32 (2, n) planar."""
    t = np.arange(int(round(duration_s * rate))) / rate
    left = 0.2 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 660 * t)
    return np.stack([left, right]).astype(np.float32)


def _add_video_stream(container, size, rate, pix_fmt="yuv420p", time_base=None):
    stream = container.add_stream("libx264", rate=rate, options={"crf": "12", "preset": "fast"})
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    stream.codec_context.thread_count = 1
    if time_base is not None:
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
    return stream


def _mux_audio(container, samples: np.ndarray, rate: int = AUDIO_RATE) -> None:
    stream = container.add_stream("aac", rate=rate, layout="stereo")
    packets = []
    for start in range(0, samples.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                           format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        packets += stream.encode(frame)
    packets += stream.encode(None)
    container.mux(packets)


def _encoded(stream, frames) -> list:
    """Every packet of ``frames`` (RGB arrays) encoded by ``stream``, frame ``i`` at pts ``i``."""
    packets = []
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        packets += stream.encode(frame)
    return packets + stream.encode(None)


def make_test_clip(path, n_frames: int = 24, size: tuple[int, int] = (96, 64), cut_at: int | None = 12,
                   fps: int | Fraction | str = 24, audio: bool = True, seed: int = 0,
                   rotation: int = 0, pix_fmt: str = "yuv420p") -> np.ndarray:
    """Write the synthetic test clip (H.264 mp4, optional AAC audio) and return its frames.

    Parameters
    ----------
    path : path-like
        Output file; the container follows the suffix (``.mp4``, ``.mkv``).
    n_frames, size, cut_at, seed
        See :func:`synthetic_frames`; ``size`` is (width, height).
    fps : int, Fraction or str
        Exact frame rate (``"30000/1001"`` works).
    audio : bool
        Add a stereo tone as long as the video.
    rotation : int
        Display rotation (counter-clockwise degrees) stored in the container.
    pix_fmt : str
        ``yuv444p`` allows odd sizes, which ``yuv420p`` cannot hold.

    Returns
    -------
    frames : ndarray, uint8 (N, H, W, 3)
        What was encoded (before compression), as stored -- not rotated.
    """
    frames = synthetic_frames(n_frames, size, cut_at, seed)
    rate = Fraction(fps)
    with av.open(str(path), "w") as container:
        stream = _add_video_stream(container, size, rate, pix_fmt)
        if rotation:
            stream.set_display_rotation(rotation)
        packets = _encoded(stream, frames)
        if audio:
            _mux_audio(container, tone(float(n_frames / rate)))
        container.mux(packets)
    return frames


def make_vfr_clip(path, n_frames: int = 49, size: tuple[int, int] = (96, 64), seed: int = 1,
                  audio: bool = False,
                  intervals: tuple[Fraction, ...] = (Fraction(1, 48), Fraction(1, 48), Fraction(1, 12)),
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Write a variable-frame-rate clip whose frame intervals cycle through ``intervals``.

    The default cycle (1/48, 1/48, 1/12 s) averages 1/24 s, so the stream's average rate is
    24 fps, yet resampling to 24 fps must both drop frames (two within 1/24 s) and repeat them
    (a 1/12 s gap); with 49 frames the clip spans exactly 16 cycles = 2 s.  Each frame carries
    its index as a barcode (:func:`read_index`) so tests can tell which source frame a
    resampled output frame is.

    Returns
    -------
    frames : ndarray, uint8 (N, H, W, 3)
    times : ndarray of Fraction (N,)
        Presentation time of each frame in seconds, exact.
    """
    frames = synthetic_frames(n_frames, size, None, seed)
    frames = np.stack([stamp_index(f, i) for i, f in enumerate(frames)])
    time_base = Fraction(1, 90_000)
    times = [Fraction(0)]
    for i in range(n_frames - 1):
        times.append(times[-1] + Fraction(intervals[i % len(intervals)]))
    with av.open(str(path), "w") as container:
        stream = _add_video_stream(container, size, 24, time_base=time_base)
        packets = []
        for image, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = int(t / time_base)
            frame.time_base = time_base
            packets += stream.encode(frame)
        packets += stream.encode(None)
        if audio:
            _mux_audio(container, tone(float(times[-1] + Fraction(intervals[0]))))
        container.mux(packets)
    return frames, np.array(times, dtype=object)


def make_audio_file(path, duration_s: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """Write an audio-only file holding :func:`tone`; the codec follows the suffix:
    ``.m4a`` -> AAC (copied by write_video), ``.wav`` -> 16-bit PCM (re-encoded to AAC)."""
    samples = tone(duration_s, rate)
    path = Path(path)
    with av.open(str(path), "w") as container:
        if path.suffix == ".wav":
            stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        else:
            _mux_audio(container, samples, rate)
    return samples


def make_undecodable_clip(path, n_packets: int = 5) -> None:
    """Write a Matroska file with a well-formed H.264 stream header but random packet data,
    so it opens fine and yet yields no decodable frame."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("h264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
        for i in range(n_packets):
            packet = av.Packet(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            packet.stream = stream
            packet.pts = packet.dts = i
            packet.time_base = stream.time_base
            container.mux(packet)


def make_reproducible_clip(path, n_frames: int = 48, size: tuple[int, int] = (96, 64), fps: int = 24,
                           audio: bool = True, faststart: bool = False, keyint: int = 250,
                           seed: int = 0) -> np.ndarray:
    """The synthetic clip (cut half way), written so that the file has the same bytes on every
    run: for tests that damage a fixed byte range of it.  Returns its frames.

    x264's AVX-512 macroblock-tree code reads leftover heap memory at widths that are not a
    multiple of 128 pixels (see ``restyle.video._x264_options``), so the macroblock tree is off;
    ``bitexact`` keeps version strings and random Matroska IDs out.  ``faststart`` puts the mp4
    index in front, so a file cut short still opens; ``keyint`` is the longest keyframe interval.
    """
    frames = synthetic_frames(n_frames, size, n_frames // 2, seed)
    container_options = {"fflags": "+bitexact"}
    if faststart:
        container_options["movflags"] = "+faststart"
    with av.open(str(path), "w", container_options=container_options) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps),
                                      options={"crf": "12", "preset": "fast", "x264-params": f"mbtree=0:keyint={keyint}"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        packets = _encoded(stream, frames)
        if audio:
            _mux_audio(container, tone(float(Fraction(n_frames, fps))))
        container.mux(packets)
    return frames


def overwrite_bytes(path, start: float, stop: float, seed: int = 0) -> range:
    """Overwrite the bytes from ``start`` to ``stop`` (fractions of the file size) with seeded
    noise, as a bad disk sector or a broken copy would; returns the byte range."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    hit = range(int(len(data) * start), int(len(data) * stop))
    data[hit.start:hit.stop] = np.random.default_rng(seed).integers(0, 256, len(hit), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return hit


def cut_tail(path, keep: float) -> None:
    """Keep only the first ``keep`` (fraction) of the file's bytes, like an interrupted copy."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
