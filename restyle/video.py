"""Media I/O with PyAV: probe a clip, decode it to RGB frames at a constant rate, write H.264 mp4.

Three rules shape this module:

* **Constant frame rate in, constant frame rate out.**  Everything downstream (flow, keyframes,
  propagation) indexes frames by number, so :func:`read_frames` always yields a CFR sequence.
  Variable-frame-rate sources (phones, screen recorders) are resampled the way
  ``ffmpeg -vsync cfr`` does it, so frame ``k`` is what was on screen at time ``k / fps`` and the
  original audio still lines up.
* **Exact rates.**  Frame rates are kept as :class:`fractions.Fraction` (``30000/1001``, not
  ``29.97``) so a long NTSC clip does not drift against its audio after a round trip.
* **Reproducible files.**  :func:`write_video` pins the encoder's thread count and sets the
  ``bitexact`` flags, so the same frames always give the same bytes (workflow outputs can be
  compared by checksum), and it writes through a temporary file so an interrupted run never leaves
  a truncated mp4 behind under the final name.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from restyle.io import remove_stale_staging

# Rates a measured average is snapped to, so a phone clip averaging 29.94 fps becomes 30000/1001
# rather than an unreadable fraction.
STANDARD_RATES = tuple(Fraction(r) for r in (
    "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60", "120"))

# How far (relative) a measured rate may be from a standard one and still be snapped to it.
RATE_SNAP_TOLERANCE = 0.01

# Audio codecs the mp4 muxer stores as they are: these are copied packet for packet (lossless,
# and byte-identical on every run); anything else is re-encoded to AAC.
MP4_COPYABLE_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3"})

AAC_BIT_RATE = 160_000


class VideoError(ValueError):
    """A media file cannot be used; the message is one line naming the file and the fix."""


# --------------------------------------------------------------------------------------------
# probing


def _fail(path: Path, problem: str, hint: str) -> VideoError:
    # One line on purpose: Snakemake and CLI users see only the last line of a traceback.
    return VideoError(f"{path}: {problem}; {hint}")


def _open_input(path: str | os.PathLike) -> tuple[Path, av.container.InputContainer]:
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found", "check the path (relative paths start at the working directory)")
    if path.is_dir():
        raise _fail(path, "is a directory, not a video file", "pass the path of a video file inside it")
    if path.stat().st_size == 0:
        raise _fail(path, "is empty (0 bytes)", "the file was not written completely; re-export or copy it again")
    try:
        return path, av.open(str(path))
    except av.FFmpegError as err:
        problem = f"not a readable video ({err.strerror or type(err).__name__})"
        raise _fail(path, problem.replace("\n", " "),
                    "make sure the file is a complete video (mp4, mov, mkv, webm, ...) "
                    "and not truncated; re-export it if unsure") from None


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams:
        raise _fail(path, "contains no streams at all",
                    "the file is empty or was not finished writing; re-export it")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams}))
        raise _fail(path, f"has no video stream (only {kinds})",
                    "pass a video file, not an audio-only or subtitle file")
    return container.streams.video[0]


def _snap_rate(rate: Fraction) -> Fraction:
    """Snap a measured rate to the nearest standard one when close, else a tidy fraction."""
    nearest = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    if abs(nearest - rate) <= RATE_SNAP_TOLERANCE * nearest:
        return nearest
    return rate.limit_denominator(1001)


def as_fraction(fps: Fraction | int | float | str) -> Fraction:
    """A frame rate as an exact fraction.

    Strings (``"30000/1001"``, ``"24"``), ints and Fractions are taken as they are; floats are
    snapped to a standard rate when within 0.1 % of one (``29.97`` -> ``30000/1001``), since a
    float cannot hold an NTSC rate exactly.
    """
    if isinstance(fps, (Fraction, int, str)):
        rate = Fraction(fps)
    elif isinstance(fps, float):
        rate = Fraction(fps)
        nearest = min(STANDARD_RATES, key=lambda r: abs(r - rate))
        rate = nearest if abs(nearest - rate) <= 1e-3 * nearest else rate.limit_denominator(1001)
    else:
        # numpy scalars and other number types
        return as_fraction(float(fps))
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    return rate


def _is_uniform(ticks: np.ndarray) -> bool:
    """True when successive timestamps are evenly spaced, up to rounding of the time base.

    Containers with coarse time bases (Matroska counts milliseconds) store 30000/1001 fps as
    33, 34, 33, ... ms, so one tick of jitter still counts as uniform.
    """
    if len(ticks) < 3:
        return True
    deltas = np.diff(ticks)
    nominal = float(np.median(deltas))
    if nominal <= 0:
        return False
    tolerance = max(1.0, 0.02 * nominal)
    return bool(np.all(np.abs(deltas - nominal) <= tolerance))


def _display_size(width: int, height: int, sample_aspect: Fraction | None, rotation: int) -> tuple[int, int]:
    """Size a player would show: non-square pixels stretched, quarter turns applied."""
    if sample_aspect and sample_aspect > 0 and sample_aspect != 1:
        width = max(1, round(width * sample_aspect))
    if rotation % 180 != 0:
        width, height = height, width
    return width, height


def probe_video(path: str | os.PathLike) -> dict:
    """Describe a video file, checking that it can actually be decoded.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    info : dict
        ``fps`` (float), ``fps_fraction`` (exact, e.g. ``"30000/1001"``),
        ``n_frames`` (frames :func:`read_frames` yields: for a variable-frame-rate file the
        count after resampling to ``fps``), ``n_source_frames`` (frames stored in the file),
        ``width``, ``height`` (display size: rotation and non-square pixels applied, before
        any evening-out -- see :func:`output_size`), ``rotation`` (counter-clockwise degrees the
        player turns the picture), ``has_audio``, ``variable_frame_rate`` and ``duration_s``
        (``n_frames / fps``).

    Raises
    ------
    VideoError
        With a one-line message naming the file and the fix, when the file is missing, is not
        a readable media file, has no video stream or has no decodable frame.
    """
    path, container = _open_input(path)
    with container:
        stream = _video_stream(path, container)
        time_base = stream.time_base
        # Containers that do not store a frame count (Matroska, WebM) get one by decoding.
        count_by_decoding = not stream.frames
        pts_ticks: list[int] = []
        n_decoded = 0
        first = None
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    pts_ticks.append(packet.pts)
                if count_by_decoding or first is None:
                    try:
                        frames = packet.decode()
                    except av.InvalidDataError:
                        continue  # a damaged packet: skip it like players do
                    n_decoded += len(frames)
                    if first is None and frames:
                        first = frames[0]
        except av.FFmpegError as err:
            raise _fail(path, f"decoding failed ({err})".replace("\n", " "),
                        "the file is probably truncated or corrupt; re-export it") from None
        if first is None:
            raise _fail(path, "contains no decodable video frame",
                        "the file is empty, truncated or uses an unsupported codec; re-export it as H.264 mp4")

        n_source = n_decoded if count_by_decoding else stream.frames
        ticks = np.unique(np.asarray(pts_ticks, dtype=np.int64))
        variable = time_base is not None and not _is_uniform(ticks)
        if variable:
            # The average over the covered span, snapped: frames at t_0 .. t_{n-1} are n-1 intervals.
            span = Fraction(int(ticks[-1] - ticks[0])) * time_base
            fps = _snap_rate(Fraction(len(ticks) - 1) / span)
            # One output frame per 1/fps up to and including the last source frame's time.
            n_frames = math.floor(span * fps + Fraction(1, 2)) + 1
        else:
            rate = stream.average_rate or stream.guessed_rate
            if not rate and len(ticks) >= 2 and time_base is not None:
                rate = _snap_rate(1 / (Fraction(int(np.median(np.diff(ticks)))) * time_base))
            if not rate:
                raise _fail(path, "has no usable frame rate", "re-export the video with a constant frame rate")
            fps = Fraction(rate)
            n_frames = n_source
        rotation = int(first.rotation) if first.rotation else 0
        width, height = _display_size(first.width, first.height, stream.sample_aspect_ratio, rotation)
        return {
            "fps": float(fps),
            "fps_fraction": f"{fps.numerator}/{fps.denominator}",
            "n_frames": int(n_frames),
            "n_source_frames": int(n_source),
            "width": int(width),
            "height": int(height),
            "rotation": rotation,
            "has_audio": bool(container.streams.audio),
            "variable_frame_rate": bool(variable),
            "duration_s": float(n_frames / fps),
        }


# --------------------------------------------------------------------------------------------
# reading


def output_size(width: int, height: int, target_width: int | None = None) -> tuple[int, int]:
    """Frame size :func:`read_frames` produces for a ``width`` x ``height`` source.

    Both sides come out even because H.264 in yuv420p stores colour at half resolution and
    rejects odd sizes.  Without ``target_width`` an odd side loses one pixel (by resizing, so the
    whole picture is kept); with it, the height follows the aspect ratio, rounded to even.
    """
    if target_width is None:
        out_w = width - width % 2
        out_h = height - height % 2
    else:
        if target_width < 2:
            raise ValueError(f"target width must be at least 2, got {target_width}")
        out_w = target_width - target_width % 2
        out_h = 2 * round(height * out_w / width / 2)
    return max(2, out_w), max(2, out_h)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int], rotation: int,
            sample_aspect: Fraction | None = None) -> np.ndarray:
    # Honour the file's colour range tag; leaving it unset would read full-range (JPEG) video
    # as limited range and wash the picture out.  The matrix (BT.601/709) follows the frame's
    # own colorspace tag inside PyAV.
    src_range = frame.color_range if frame.color_range in (1, 2) else None
    rgb = frame.to_ndarray(format="rgb24", src_color_range=src_range)
    if sample_aspect and sample_aspect > 0 and sample_aspect != 1:
        # Anamorphic: stretch to square pixels first, so resizing below keeps the shape.
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * sample_aspect)), rgb.shape[0]),
                         interpolation=cv2.INTER_CUBIC)
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns:
        # np.rot90 turns counter-clockwise, the same sense as the display matrix angle.
        rgb = np.rot90(rgb, quarter_turns)
    h, w = rgb.shape[:2]
    if (w, h) != size:
        shrinking = size[0] <= w and size[1] <= h
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.ascontiguousarray(rgb)


def read_frames(path: str | os.PathLike, width: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video to RGB frames at a constant frame rate.

    A file with evenly spaced timestamps yields every decoded frame.  A variable-frame-rate
    file is resampled to ``probe_video(path)["fps"]``: output frame ``k`` is the latest source
    frame shown at or before time ``k / fps`` (counted from the first frame), so frames are
    repeated across long gaps and dropped where they come faster -- what ``ffmpeg -vsync cfr``
    does -- and the sequence stays in step with the file's audio.

    Parameters
    ----------
    path : str or path-like
    width : int, optional
        Resize to this width (rounded down to even), keeping the aspect ratio with an even
        height; area interpolation when shrinking.  Without it, frames keep their display size
        except that odd sides are resized to the next smaller even number.

    Returns
    -------
    frames : iterator of ndarray, uint8 (H, W, 3) RGB
        ``probe_video(path)["n_frames"]`` frames, all of size
        ``output_size(info["width"], info["height"], width)``; rotated sources come out upright.
        Decoded lazily, one frame in memory at a time.

    Raises
    ------
    VideoError
        At call time for the cases of :func:`probe_video`; while iterating when decoding fails
        part way.
    """
    # Probe first, outside the generator, so a bad file fails here and not at the first next().
    info = probe_video(path)
    size = output_size(info["width"], info["height"], width)
    return _decode_rgb(Path(path), info, size)


def _decode_rgb(path: Path, info: dict, size: tuple[int, int]) -> Iterator[np.ndarray]:
    path, container = _open_input(path)
    with container:
        stream = _video_stream(path, container)
        convert = functools.partial(_to_rgb, size=size, rotation=info["rotation"],
                                    sample_aspect=stream.sample_aspect_ratio)
        try:
            if info["variable_frame_rate"]:
                yield from _resample_to_cfr(_decoded(container, stream), stream.time_base,
                                            Fraction(info["fps_fraction"]), info["n_frames"], convert)
            else:
                for frame in _decoded(container, stream):
                    yield convert(frame)
        except av.FFmpegError as err:
            raise _fail(path, f"decoding failed ({err})".replace("\n", " "),
                        "the file is probably truncated or corrupt; re-export it") from None


def _decoded(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream``, skipping damaged packets the way players do."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue


def _resample_to_cfr(frames: Iterable[av.VideoFrame], time_base: Fraction, fps: Fraction, n_out: int,
                     convert: Callable[[av.VideoFrame], np.ndarray]) -> Iterator[np.ndarray]:
    """Latest-frame-at-or-before resampling of a VFR stream onto the grid ``t0 + k / fps``."""
    ticks_per_frame = 1 / (fps * time_base)  # output spacing in stream ticks, exact
    start = None
    k = 0
    current = None  # the latest decoded frame, converted to RGB only when it is output
    current_rgb = None
    for frame in frames:
        if frame.pts is None:
            continue  # cannot be placed in time; players drop these too
        if start is None:
            start = frame.pts
        # Output times before this frame (less half a tick, absorbing timestamp rounding in
        # coarse time bases) still show the previous frame.
        while current is not None and k < n_out and start + k * ticks_per_frame < frame.pts - Fraction(1, 2):
            if current_rgb is None:
                current_rgb = convert(current)
            yield current_rgb.copy()
            k += 1
        current, current_rgb = frame, None
    while current is not None and k < n_out:
        if current_rgb is None:
            current_rgb = convert(current)
        yield current_rgb.copy()
        k += 1


# --------------------------------------------------------------------------------------------
# writing


def _sync_offset(container: av.container.InputContainer) -> Fraction:
    """Time (s) in ``container`` that corresponds to t = 0 of a video read from it.

    :func:`read_frames` starts at the first video frame, so audio is shifted by the video
    stream's start time to stay in sync.  An audio-only file starts at 0.
    """
    if container.streams.video:
        video = container.streams.video[0]
        if video.start_time is not None and video.time_base is not None:
            return Fraction(video.start_time) * video.time_base
    return Fraction(0)


class _AudioTrack:
    """The audio of one input muxed into ``output`` in step with the video being written.

    Audio is pulled only up to the time of the video written so far, so the file comes out
    interleaved without holding the whole track in memory, and :meth:`finish` trims it to the
    final video duration (unknown until the last frame arrives).
    """

    def __init__(self, input_container: av.container.InputContainer, output: av.container.OutputContainer):
        self.input = input_container
        self.output = output
        self.in_stream = input_container.streams.audio[0]
        self.offset = _sync_offset(input_container)
        self.copy = self.in_stream.codec_context.name in MP4_COPYABLE_AUDIO
        if self.copy:
            self.out_stream = output.add_stream_from_template(self.in_stream)
            self.units = self._packets()
        else:
            in_ctx = self.in_stream.codec_context
            # AAC takes only the standard rates; anything else is resampled to 48 kHz.
            aac_rates = av.codec.Codec("aac", "w").audio_rates
            self.rate = in_ctx.sample_rate if in_ctx.sample_rate in aac_rates else 48000
            self.layout = "stereo" if in_ctx.layout.nb_channels != 1 else "mono"
            self.out_stream = output.add_stream("aac", rate=self.rate, layout=self.layout,
                                                options={"flags": "+bitexact"})
            self.out_stream.codec_context.bit_rate = AAC_BIT_RATE
            self.samples_written = 0
            self.units = self._frames()
        self.pending = None  # (start_s, end_s, unit) pulled from the input but not yet muxed

    def _packets(self):
        tb = self.in_stream.time_base
        shift = int(round(self.offset / tb))
        for packet in self.input.demux(self.in_stream):
            if packet.pts is None or not packet.size:
                continue
            packet.pts -= shift
            packet.dts = packet.dts - shift if packet.dts is not None else packet.pts
            start = Fraction(packet.pts) * tb
            yield start, start + Fraction(packet.duration or 0) * tb, packet

    def _frames(self):
        # Resampled to planar float at the output rate and layout, so every chunk can be cut
        # and re-packed the same way.
        resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        position = None  # output time (s) of the next sample, exact
        # The trailing None flushes the resampler.
        for frame in itertools.chain(self.input.decode(self.in_stream), [None]):
            for chunk in resampler.resample(frame):
                if position is None:
                    # The track is treated as contiguous from its first frame on.
                    known = frame is not None and frame.pts is not None
                    t0 = Fraction(frame.pts) * frame.time_base if known else Fraction(0)
                    position = t0 - self.offset
                end = position + Fraction(chunk.samples, self.rate)
                yield position, end, chunk
                position = end

    def _mux_unit(self, start: Fraction, unit, end: Fraction | None = None) -> None:
        """Mux one packet (copy) or encode one chunk of samples, cut at ``end`` seconds."""
        if self.copy:
            unit.stream = self.out_stream
            self.output.mux(unit)
            return
        samples = unit.to_ndarray()  # (channels, n) planar float32
        first_sample = round(start * self.rate)
        if first_sample > self.samples_written:
            # A gap (audio starting after the first video frame): fill with silence to keep sync.
            gap = np.zeros((samples.shape[0], first_sample - self.samples_written), dtype=samples.dtype)
            samples = np.concatenate([gap, samples], axis=1)
            first_sample = self.samples_written
        # Skip what precedes t = 0 or was already written; stop at the end of the video.
        head = self.samples_written - first_sample
        stop = samples.shape[1] if end is None else min(samples.shape[1], round(end * self.rate) - first_sample)
        if stop <= head:
            return
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, head:stop]), format="fltp",
                                           layout=self.layout)
        chunk.sample_rate = self.rate
        chunk.time_base = Fraction(1, self.rate)
        chunk.pts = self.samples_written
        self.samples_written += stop - head
        self.output.mux(self.out_stream.encode(chunk))

    def _next(self):
        if self.pending is None:
            self.pending = next(self.units, None)
        return self.pending

    def advance(self, until: Fraction) -> None:
        """Mux every audio unit that ends by ``until`` seconds.

        Units reaching past it wait: the video may end there, and then they must be trimmed.
        """
        while (unit := self._next()) is not None and unit[1] <= until:
            self._mux_unit(unit[0], unit[2])
            self.pending = None

    def finish(self, duration: Fraction) -> None:
        """Mux what remains of the audio up to ``duration`` seconds, then flush the encoder.

        Copied packets are whole codec frames, so copied audio may run past the video by less
        than one frame (21 ms for 48 kHz AAC); re-encoded audio is cut to the sample.
        """
        while (unit := self._next()) is not None and unit[0] < duration:
            self._mux_unit(unit[0], unit[2], end=duration)
            self.pending = None
        if not self.copy:
            self.output.mux(self.out_stream.encode(None))


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction | int | float | str,
                audio_source: str | os.PathLike | None = None, crf: int = 18, preset: str = "medium",
                threads: int = 2) -> int:
    """Encode RGB frames to an H.264 mp4, optionally with the audio of another file.

    Parameters
    ----------
    path : str or path-like
        Output ``.mp4``; written to a temporary file beside it and renamed into place only once
        complete.
    frames : iterable of ndarray, uint8 (H, W, 3) RGB
        All the same, even size (yuv420p halves the colour resolution).  Consumed lazily.
    fps : Fraction, int, str or float
        Frame rate, ideally exact (``Fraction(30000, 1001)`` or ``"30000/1001"``); see
        :func:`as_fraction` for floats.
    audio_source : str or path-like, optional
        A media file whose first audio stream is muxed in, shifted by its video start time so it
        stays in sync with frames read by :func:`read_frames`, and trimmed to the video's
        duration.  mp4-compatible codecs (AAC, MP3, ALAC, AC-3) are copied losslessly; others
        are re-encoded to AAC.  A file without audio adds none.
    crf : int
        x264 constant rate factor: 18 is visually lossless, +6 halves the size.
    preset : str
        x264 speed preset.
    threads : int
        Encoder threads.  Fixed rather than "auto" because x264's output depends on the thread
        count; with it pinned the same frames give the same bytes on any machine.

    Returns
    -------
    n_frames : int
        Number of frames written.

    Raises
    ------
    ValueError
        For no frames, frames of odd or changing size, or non-uint8 RGB frames.
    VideoError
        When ``audio_source`` is given but cannot be opened.
    """
    path = Path(path)
    fps = as_fraction(fps)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    height, width = _check_frame(first, None, 0)
    if width % 2 or height % 2:
        raise ValueError(f"{path}: frame size {width}x{height} is odd; H.264 (yuv420p) needs even sides, "
                         f"resize with restyle.video.output_size")

    audio_input = None
    if audio_source is not None:
        _, audio_input = _open_input(audio_source)
        if not audio_input.streams.audio:
            audio_input.close()
            audio_input = None

    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path.parent, f".{path.name}.*.part")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        # fflags=bitexact keeps the libavformat version string (and anything else that varies
        # between builds) out of the file.
        with av.open(tmp_name, "w", format="mp4", container_options={"fflags": "+bitexact"}) as output:
            stream = output.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": preset})
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = threads
            stream.codec_context.flags |= av.codec.context.Flags.bitexact
            # Tag what the frames are converted with (BT.709, limited range) so players decode
            # the colours the way they were encoded.
            stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709
            stream.codec_context.color_primaries = 1  # AVCOL_PRI_BT709
            stream.codec_context.color_trc = 1  # AVCOL_TRC_BT709
            stream.codec_context.color_range = 1  # AVCOL_RANGE_MPEG
            audio = _AudioTrack(audio_input, output) if audio_input is not None else None

            n = 0
            frame = first
            while frame is not None:
                _check_frame(frame, (height, width), n)
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                video_frame = video_frame.reformat(format="yuv420p", dst_colorspace="itu709",
                                                   dst_color_range="MPEG")
                video_frame.pts = n
                output.mux(stream.encode(video_frame))
                n += 1
                if audio is not None:
                    audio.advance(Fraction(n) / fps)
                frame = next(iterator, None)
            output.mux(stream.encode(None))
            if audio is not None:
                audio.finish(Fraction(n) / fps)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; a video should be readable like any file
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    finally:
        if audio_input is not None:
            audio_input.close()
    return n


def _check_frame(frame: np.ndarray, size: tuple[int, int] | None, index: int) -> tuple[int, int]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame {index}: expected uint8 (H, W, 3) RGB, got {desc}")
    if size is not None and frame.shape[:2] != size:
        raise ValueError(f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} differs from "
                         f"the first frame's {size[1]}x{size[0]}")
    return frame.shape[0], frame.shape[1]
