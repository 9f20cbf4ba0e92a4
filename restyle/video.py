"""Media I/O with PyAV: probe a clip, decode it to RGB frames at a constant rate, write H.264 mp4.

Three rules shape this module:

* **Constant frame rate in, constant frame rate out.**  Everything downstream (flow, keyframes,
  propagation) indexes frames by number, so :func:`read_frames` always yields a CFR sequence.
  Variable-frame-rate sources (phones, screen recorders) are resampled the way
  ``ffmpeg -vsync cfr`` does it, so frame ``k`` is what was on screen at time ``k / fps`` and the
  original audio still lines up.
* **Exact rates.**  Frame rates are kept as :class:`fractions.Fraction` (``30000/1001``, not
  ``29.97``) so a long NTSC clip does not drift against its audio after a round trip.
* **Reproducible files.**  :func:`write_video` pins the encoder's thread count, sets the
  ``bitexact`` flags and avoids an x264 code path that reads uninitialised memory (see
  :func:`_x264_options`), so the same frames always give the same bytes (workflow outputs can be
  compared by checksum), and it writes through a temporary file so an interrupted run never leaves
  a truncated mp4 behind under the final name.
* **No silently dropped frames.**  Frames that cannot be decoded (garbage in the file, a cut-off
  tail) are found against where the container says frames should be (its timestamps, frame
  count, duration and rate) -- at probe time when the packets show it, else while decoding.  By
  default that is a :class:`VideoError` naming the frames and their times; with
  ``decode_errors="repair"`` the last good frame stands in for each, so the frame count and the
  sync with the audio are kept, and a warning says which.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from restyle.io import RestyleError, staged_file

# Rates a measured average is snapped to, so a phone clip averaging 29.94 fps becomes 30000/1001
# rather than an unreadable fraction.
STANDARD_RATES = tuple(Fraction(r) for r in (
    "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60", "120"))

# How far (relative) a rate may be from a standard one and still be snapped to it: a rate
# measured from timestamps carries their rounding (1 %); a float given for a rate only its
# own (0.1 %: 29.97 is NTSC, 29.7 is not).
MEASURED_RATE_TOLERANCE = 0.01
FLOAT_RATE_TOLERANCE = 0.001

# Audio codecs the mp4 muxer stores as they are: these are copied packet for packet (lossless,
# and byte-identical on every run); anything else is re-encoded to AAC.
MP4_COPYABLE_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3"})

AAC_BIT_RATE = 160_000


class VideoError(RestyleError, ValueError):
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


def _snap_rate(rate: Fraction, tolerance: float = MEASURED_RATE_TOLERANCE) -> Fraction:
    """Snap a rate to the nearest standard one when within ``tolerance``, else a tidy fraction."""
    nearest = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    if abs(nearest - rate) <= tolerance * nearest:
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
        rate = _snap_rate(Fraction(fps), FLOAT_RATE_TOLERANCE)
    else:
        # numpy scalars and other number types
        return as_fraction(float(fps))
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    return rate


def _grid_slots(ticks: np.ndarray, allowed_holes: int = 0) -> np.ndarray | None:
    """Slot of each timestamp on an evenly spaced grid, or None when the spacing is irregular.

    Containers with coarse time bases (Matroska counts milliseconds) store 30000/1001 fps as
    33, 34, 33, ... ms, so one tick of jitter still counts as even.  Up to ``allowed_holes``
    slots may be empty: frames the container lists but which could not be read (a truncated
    file).  Any other gap means a variable frame rate.
    """
    if len(ticks) < 3:
        return np.arange(len(ticks))
    deltas = np.diff(ticks)
    nominal = float(np.median(deltas))
    if nominal <= 0:
        return None
    steps = np.rint(deltas / nominal).astype(np.int64)
    tolerance = max(1.0, 0.02 * nominal)
    if np.any(steps < 1) or np.any(np.abs(deltas - steps * nominal) > tolerance):
        return None
    if int(np.sum(steps - 1)) > allowed_holes:
        return None
    return np.concatenate([[0], np.cumsum(steps)])


def _display_size(width: int, height: int, sample_aspect: Fraction | None, rotation: int) -> tuple[int, int]:
    """Size a player would show: non-square pixels stretched, quarter turns applied."""
    if sample_aspect and sample_aspect > 0 and sample_aspect != 1:
        width = max(1, round(width * sample_aspect))
    if rotation % 180 != 0:
        width, height = height, width
    return width, height


# --------------------------------------------------------------------------------------------
# where frames should be, and damage


DECODE_ERROR_MODES = ("fail", "repair")

_NO_FRAME = np.iinfo(np.int64).min  # owner of an output frame whose stored frame the file lost

_LISTED_RANGES = 3  # damaged ranges a message names before "and N more"

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())  # warnings reach stderr through _warn, not twice


@dataclass(frozen=True)
class _Timeline:
    """The output frames of a video stream: when each one is and which stored frame it shows.

    Output frame ``k`` shows the latest decoded frame whose timestamp ``pts`` (stream ticks)
    satisfies ``2 * scale * pts <= limits[k]`` -- its time plus half a tick, which absorbs
    timestamp rounding, in exact integer arithmetic -- and that should be the stored frame with
    timestamp ``owners[k]``.  Where that one did not decode, or the file lost it
    (``_NO_FRAME``), output frame ``k`` is damaged.
    """

    limits: np.ndarray  # int64
    owners: np.ndarray  # int64
    scale: int
    variable: bool

    def __len__(self) -> int:
        return len(self.limits)


def _cfr_timeline(ticks: np.ndarray, slots: np.ndarray, n_frames: int, step: float) -> _Timeline:
    """One output frame per grid slot; slots without a timestamp are lost frames.  ``step``
    (ticks per frame, from the frame rate) places lost frames when too few timestamps say."""
    n_frames = max(n_frames, int(slots[-1]) + 1)
    owners = np.full(n_frames, _NO_FRAME, dtype=np.int64)
    owners[slots] = ticks
    if slots[-1]:
        step = (ticks[-1] - ticks[0]) / slots[-1]
    times = np.rint(ticks[0] + np.arange(n_frames) * step).astype(np.int64)
    times[slots] = ticks
    return _Timeline(limits=2 * times + 1, owners=owners, scale=1, variable=False)


def _vfr_timeline(ticks: np.ndarray, time_base: Fraction, fps: Fraction, n_frames: int,
                  n_covered: int) -> _Timeline:
    """Output frame ``k`` at ``ticks[0] + k / fps``: the latest stored frame at or before it.

    Output frames from ``n_covered`` on lie past the last frame read (a truncated file).
    """
    spacing = 1 / (fps * time_base)  # output spacing in stream ticks, exact
    num, den = spacing.numerator, spacing.denominator
    times = int(ticks[0]) * den + np.arange(n_frames, dtype=np.int64) * num  # in ticks / den
    limits = 2 * times + den
    latest = np.searchsorted(2 * den * ticks, limits, side="right") - 1
    owners = ticks[np.maximum(latest, 0)].astype(np.int64)
    owners[n_covered:] = _NO_FRAME
    return _Timeline(limits=limits, owners=owners, scale=den, variable=True)


def _place(frames: Iterable, timeline: _Timeline, pts_of: Callable = lambda frame: frame.pts):
    """Lay decoded frames (in presentation order) on the timeline's output frames.

    Yields ``(k, frame, ok)`` for every output frame ``k``: the latest decoded frame at or
    before its time (None before the first one) and whether that is the stored frame ``k``
    should show.  A frame whose time is unknown, or which arrives after a later one (a
    decoder confused by damage), is dropped.
    """
    limits, owners = timeline.limits.tolist(), timeline.owners.tolist()
    twice_scale = 2 * timeline.scale
    n = len(limits)
    k = 0
    current = current_pts = None
    for frame in frames:
        pts = pts_of(frame)
        if pts is None or (current_pts is not None and pts <= current_pts):
            continue
        while k < n and twice_scale * pts > limits[k]:
            yield k, current, current_pts == owners[k]
            k += 1
        if k == n:
            return
        current, current_pts = frame, pts
    while k < n:
        yield k, current, current_pts == owners[k]
        k += 1


def _damaged_frames(decoded: list[int], timeline: _Timeline, clean_from: int | None = None) -> np.ndarray:
    """Output frames of ``timeline`` that do not get their stored frame, given the timestamps
    of the frames decoded (in output order).  With ``clean_from``, decoding stopped soon after
    that timestamp, and all later frames are taken as good unless the file lost them."""
    damaged = [k for k, _, ok in _place(decoded, timeline, pts_of=lambda pts: pts) if not ok]
    if clean_from is not None:
        limits, owners = timeline.limits, timeline.owners
        twice_scale = 2 * timeline.scale
        damaged = [k for k in damaged if twice_scale * clean_from > limits[k] or owners[k] == _NO_FRAME]
    return np.asarray(damaged, dtype=np.int64)


# Packets decoded past the first clean keyframe after damage, for the B-frames shown before it.
_PAST_CLEAN_KEYFRAME = 16


def _decode_until_clean(path: Path, last_suspect: int) -> tuple[list[int], int | None]:
    """Timestamps of the frames decoded from the start until a while after the first keyframe
    following ``last_suspect`` (the stream is clean from there), and that keyframe's timestamp
    (None when decoding went to the end)."""
    decoded: list[int] = []
    clean_from = None
    past = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if clean_from is not None:
                past += 1
            elif packet.is_keyframe and packet.pts is not None and packet.pts > last_suspect:
                clean_from = packet.pts
            try:
                decoded.extend(frame.pts for frame in packet.decode())
            except av.InvalidDataError:
                continue
            if past >= _PAST_CLEAN_KEYFRAME:
                decoded.extend(frame.pts for frame in stream.codec_context.decode(None))  # flush
                break
    return decoded, clean_from


def _nal_length_size(stream) -> int | None:
    """Size of the NAL unit length prefix in an H.264/HEVC stream's packets (the mp4 and
    Matroska layout); 0 for start-code (Annex B) packets; None for other codecs."""
    ctx = stream.codec_context
    if ctx is None or ctx.name not in ("h264", "hevc"):
        return None
    extradata = bytes(ctx.extradata or b"")
    if extradata[:1] == b"\x01":  # avcC / hvcC configuration record
        index = 4 if ctx.name == "h264" else 21
        return (extradata[index] & 3) + 1 if len(extradata) > index else None
    return 0


def _well_framed(data: memoryview, length_size: int) -> bool:
    """Whether a packet's NAL units fill it exactly, judged by their length prefixes.

    Garbage overwriting a packet almost never passes: a random length points past the packet's
    end.  FFmpeg rejects such a packet as a whole, so it is a frame that cannot be decoded --
    found here without decoding anything.
    """
    if length_size == 0:
        head = bytes(data[:16])
        zeros = len(head) - len(head.lstrip(b"\0"))
        return zeros >= 2 and head[zeros:zeros + 1] == b"\x01"
    end, i = len(data), 0
    while end - i >= length_size:  # a few trailing bytes are padding
        i += length_size + int.from_bytes(data[i:i + length_size], "big")
        if i > end:
            return False
    return True


def _stated_duration_s(stream) -> float | None:
    """The stream duration its container's muxer wrote down (Matroska/WebM ``DURATION`` tag)."""
    for key, value in stream.metadata.items():
        if key.upper().startswith("DURATION"):
            try:
                hours, minutes, seconds = value.split(":")
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            except ValueError:
                return None
    return None


def _lost_by_duration(stream, ticks: np.ndarray, time_base: Fraction) -> int:
    """Frames missing after the last one read, judged by the stated duration (0 if unknown)."""
    duration = _stated_duration_s(stream)
    slots = _grid_slots(ticks, allowed_holes=len(ticks)) if duration is not None and len(ticks) >= 2 else None
    if slots is None:
        return 0
    step = (ticks[-1] - ticks[0]) / slots[-1]  # mean spacing of grid slots, gaps not counted as one
    expected = math.floor((duration / float(time_base) - ticks[0]) / step + 0.25)
    return max(0, expected - len(ticks))


def _frame_runs(frames: Iterable[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for k in sorted(frames):
        if runs and k <= runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    return runs


def _describe_frames(frames: Iterable[int], fps: Fraction) -> str:
    """``frames 30-56 (1.25-2.38 s)``: frame numbers, and the time span they cover."""
    runs = _frame_runs(frames)
    parts = []
    for a, b in runs[:_LISTED_RANGES]:
        span = f"{float(a / fps):.2f}-{float((b + 1) / fps):.2f} s"
        parts.append(f"{a}-{b} ({span})" if b > a else f"{a} ({span})")
    text = ("frame " if len(runs) == 1 and runs[0][0] == runs[0][1] else "frames ") + ", ".join(parts)
    if len(runs) > _LISTED_RANGES:
        more = len(runs) - _LISTED_RANGES
        text += f" and {more} more range{'s' if more > 1 else ''}"
    return text


def _damage_error(path, frames: Iterable[int], fps: Fraction) -> VideoError:
    return _fail(path, f"{_describe_frames(frames, fps)} cannot be decoded (damaged or truncated)",
                 "re-export or re-copy the file, or set decode_errors: repair in the config "
                 "to repeat the last good frame there")


def _warn(message: str) -> None:
    """Log a warning and show it on stderr (Snakemake passes a job's stderr on to the user)."""
    _log.warning(message)
    print(f"restyle: warning: {message}", file=sys.stderr, flush=True)


def _check_mode(decode_errors: str) -> bool:
    """True for "repair"; ValueError for anything but the two modes."""
    if decode_errors not in DECODE_ERROR_MODES:
        raise ValueError(f"decode_errors must be one of {', '.join(DECODE_ERROR_MODES)}, got {decode_errors!r}")
    return decode_errors == "repair"


# --------------------------------------------------------------------------------------------
# probe_video


def probe_video(path: str | os.PathLike, decode_errors: str = "fail") -> dict:
    """Describe a video file, checking that it can actually be decoded.

    Parameters
    ----------
    path : str or path-like
    decode_errors : {"fail", "repair"}
        What damage found here (packets whose data is garbage, frames a truncated file lost)
        does: raise, or nothing -- :func:`read_frames` then repeats the last good frame there.
        Damage inside well-formed packets shows only when decoding, in :func:`read_frames`.

    Returns
    -------
    info : dict
        ``fps`` (float), ``fps_fraction`` (exact, e.g. ``"30000/1001"``),
        ``n_frames`` (frames :func:`read_frames` yields: for a variable-frame-rate file the
        count after resampling to ``fps``; for a damaged one, counting the lost frames),
        ``n_source_frames`` (frames stored in the file), ``width``, ``height`` (display size:
        rotation and non-square pixels applied, before any evening-out -- see
        :func:`output_size`), ``rotation`` (counter-clockwise degrees the player turns the
        picture), ``has_audio``, ``variable_frame_rate`` and ``duration_s`` (``n_frames / fps``).

    Raises
    ------
    VideoError
        With a one-line message naming the file and the fix, when the file is missing, is not
        a readable media file, has no video stream or has no decodable frame; with
        ``decode_errors="fail"`` also when frames are damaged or missing (the message names
        them, with their times).
    """
    return _probe_for(path, decode_errors)[0]


def _probe_for(path: str | os.PathLike, decode_errors: str) -> tuple[dict, _Timeline | None]:
    """:func:`_probe` with the damage it finds raised as ``decode_errors`` asks."""
    info, timeline, damaged = _probe(path, find_damage=not _check_mode(decode_errors))
    if len(damaged):
        raise _damage_error(path, damaged, Fraction(info["fps_fraction"]))
    return info, timeline


def _probe(path: str | os.PathLike, find_damage: bool = True) -> tuple[dict, _Timeline | None, np.ndarray]:
    """:func:`probe_video`'s info, the stream's timeline (None without timestamps) and, with
    ``find_damage``, the output frames that are damaged (else none are listed).

    One pass over the video packets finds frames the file lost and packets whose framing is
    broken; only when there are such packets is the stream decoded up to where it is clean
    again, to name exactly the frames lost with them (B-frames that reference them, ...).
    """
    path, container = _open_input(path)
    with container:
        stream = _video_stream(path, container)
        time_base = stream.time_base
        # Containers that do not store a frame count (Matroska, WebM) are decoded in full,
        # which also checks every frame; others are checked by the framing of their packets.
        decode_all = not stream.frames
        length_size = _nal_length_size(stream)
        pts_ticks: list[int] = []
        suspects: list[int] = []  # timestamps of packets that cannot be decoded
        decoded: list[int] = []  # timestamps of decoded frames, in output order
        n_packets = n_decoded = 0
        first = None
        try:
            for packet in container.demux(stream):
                if packet.size or packet.pts is not None:
                    n_packets += 1  # all but the flush packets, as the container counts them
                shown = packet.size and packet.pts is not None and not packet.is_discard
                if shown:
                    pts_ticks.append(packet.pts)
                    if packet.is_corrupt or (length_size is not None
                                             and not _well_framed(memoryview(packet), length_size)):
                        suspects.append(packet.pts)
                if decode_all or first is None:
                    try:
                        frames = packet.decode()
                    except av.InvalidDataError:
                        if shown:
                            suspects.append(packet.pts)
                        continue  # a damaged packet; read_frames decides what stands in for it
                    n_decoded += len(frames)
                    decoded.extend(frame.pts for frame in frames)
                    if first is None and frames:
                        first = frames[0]
        except av.FFmpegError as err:
            raise _fail(path, f"decoding failed ({err})".replace("\n", " "),
                        "the file is probably truncated or corrupt; re-export it") from None
        if first is None:
            raise _fail(path, "contains no decodable video frame",
                        "the file is empty, truncated or uses an unsupported codec; re-export it as H.264 mp4")

        ticks = np.unique(np.asarray(pts_ticks, dtype=np.int64))
        timeline = None
        damaged = np.zeros(0, dtype=np.int64)
        if time_base is None or not len(ticks):
            # No timestamps to judge by: every decoded frame is output, in order.
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise _fail(path, "has no usable frame rate", "re-export the video with a constant frame rate")
            fps, variable = Fraction(rate), False
            n_source = n_frames = n_decoded if decode_all else stream.frames
        else:
            # Frames the container lists (or its stated duration implies) but that were not read.
            lost = max(0, stream.frames - n_packets) if stream.frames else _lost_by_duration(stream, ticks, time_base)
            # Gaps in an otherwise even grid are lost frames, not a variable rate, when the count
            # says so -- or when there is damage anyway (a demuxer skipping garbage drops packets).
            slots = _grid_slots(ticks, len(ticks) + lost if suspects else lost)
            variable = slots is None
            if variable:
                if not stream.frames:
                    lost = 0  # the stated duration implies a count only at an even spacing
                # The average over the covered span, snapped: frames at t_0 .. t_{n-1} are n-1 intervals.
                span = Fraction(int(ticks[-1] - ticks[0])) * time_base
                fps = _snap_rate(Fraction(len(ticks) - 1) / span)
                # One output frame per 1/fps up to and including the last source frame's time.
                n_covered = math.floor(span * fps + Fraction(1, 2)) + 1
                n_frames = n_covered
                if lost:
                    end = None if stream.duration is None else (stream.start_time or 0) + stream.duration
                    until_end = (math.floor(Fraction(int(end - ticks[0])) * time_base * fps + Fraction(1, 2))
                                 if end is not None else n_covered + lost)
                    n_frames = max(n_covered, until_end)
                timeline = _vfr_timeline(ticks, time_base, fps, n_frames, n_covered)
            else:
                rate = stream.average_rate or stream.guessed_rate
                if not rate and len(ticks) >= 2:
                    rate = _snap_rate(1 / (Fraction(int(np.median(np.diff(ticks)))) * time_base))
                if not rate:
                    raise _fail(path, "has no usable frame rate", "re-export the video with a constant frame rate")
                fps = Fraction(rate)
                timeline = _cfr_timeline(ticks, slots, len(ticks) + lost, float(1 / (fps * time_base)))
                n_frames = len(timeline)
            n_source = len(ticks) + lost
            if find_damage and decode_all:
                damaged = _damaged_frames(decoded, timeline)
            elif find_damage and suspects:
                decoded, clean_from = _decode_until_clean(path, max(suspects))
                damaged = _damaged_frames(decoded, timeline, clean_from)
            elif find_damage:
                damaged = np.flatnonzero(timeline.owners == _NO_FRAME)

        rotation = int(first.rotation) if first.rotation else 0
        width, height = _display_size(first.width, first.height, stream.sample_aspect_ratio, rotation)
        info = {
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
        return info, timeline, damaged


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


def read_frames(path: str | os.PathLike, width: int | None = None,
                decode_errors: str = "fail") -> Iterator[np.ndarray]:
    """Decode a video to RGB frames at a constant frame rate.

    A file with evenly spaced timestamps yields every decoded frame.  A variable-frame-rate
    file is resampled to ``probe_video(path)["fps"]``: output frame ``k`` is the latest source
    frame shown at or before time ``k / fps`` (counted from the first frame), so frames are
    repeated across long gaps and dropped where they come faster -- what ``ffmpeg -vsync cfr``
    does -- and the sequence stays in step with the file's audio.

    Frames that cannot be decoded (damaged data, a truncated file) are found by where frames
    should be, going by the container's timestamps, frame count and rate.

    Parameters
    ----------
    path : str or path-like
    width : int, optional
        Resize to this width (rounded down to even), keeping the aspect ratio with an even
        height; area interpolation when shrinking.  Without it, frames keep their display size
        except that odd sides are resized to the next smaller even number.
    decode_errors : {"fail", "repair"}
        ``"fail"``: raise :class:`VideoError` naming the damaged frames and times.
        ``"repair"``: output the last good frame in place of each damaged one (the first good
        one for damage at the very start), so the frame count and the sync with the audio are
        kept, and warn (log, and one ``restyle: warning:`` line on stderr) which frames.

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
        part way, or (``"fail"``) after the last good frame when frames are damaged.
    """
    return read_video(path, width, decode_errors)[1]


def read_video(path: str | os.PathLike, width: int | None = None,
               decode_errors: str = "fail") -> tuple[dict, Iterator[np.ndarray]]:
    """:func:`probe_video`'s info and :func:`read_frames`' frames, from one probe of the file."""
    # Probe first, outside the generator, so a bad file fails here and not at the first next().
    info, timeline = _probe_for(path, decode_errors)
    size = output_size(info["width"], info["height"], width)
    return info, _decode_rgb(Path(path), info, size, timeline, repair=decode_errors == "repair")


def _decode_rgb(path: Path, info: dict, size: tuple[int, int], timeline: _Timeline | None,
                repair: bool) -> Iterator[np.ndarray]:
    path, container = _open_input(path)
    with container:
        stream = _video_stream(path, container)
        convert = functools.partial(_to_rgb, size=size, rotation=info["rotation"],
                                    sample_aspect=stream.sample_aspect_ratio)
        try:
            if timeline is None:
                for frame in _decoded(container, stream):
                    yield convert(frame)
            else:
                yield from _on_timeline(path, _decoded(container, stream), timeline,
                                        Fraction(info["fps_fraction"]), convert, repair)
        except av.FFmpegError as err:
            raise _fail(path, f"decoding failed ({err})".replace("\n", " "),
                        "the file is probably truncated or corrupt; re-export it") from None


def _decoded(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream``; a damaged packet gives none (the timeline shows the gap)."""
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            continue


def _on_timeline(path: Path, frames: Iterable[av.VideoFrame], timeline: _Timeline, fps: Fraction,
                 convert: Callable[[av.VideoFrame], np.ndarray], repair: bool) -> Iterator[np.ndarray]:
    """One RGB frame per output frame of ``timeline``, each converted once.

    Variable-frame-rate streams are resampled here (latest frame at or before each output
    time).  Damaged output frames repeat the last good frame with ``repair``; without it,
    decoding goes on, with nothing more output, to name the whole damaged range in the error.
    """
    damaged: list[int] = []
    waiting = 0  # output frames before the first decoded one, which then stands in for them
    shown = shown_rgb = None
    for k, frame, ok in _place(frames, timeline):
        if not ok:
            damaged.append(k)
        if damaged and not repair:
            continue
        if frame is None:
            waiting += 1
        elif frame is shown:
            yield shown_rgb.copy()
        else:
            shown, shown_rgb = frame, convert(frame)
            for _ in range(waiting):
                yield shown_rgb.copy()
            waiting = 0
            # Resampled streams repeat frames all the time: keep the converted frame pristine.
            yield shown_rgb.copy() if timeline.variable else shown_rgb
    if shown is None and (repair or not damaged):
        raise _fail(path, "contains no decodable video frame",
                    "the file is empty, truncated or uses an unsupported codec; re-export it as H.264 mp4")
    if damaged and not repair:
        raise _damage_error(path, damaged, fps)
    if damaged:
        at_start = " (the first good one at the very start)" if damaged[0] == 0 else ""
        _warn(f"{path}: {len(damaged)} frame{'s' if len(damaged) > 1 else ''} could not be decoded "
              f"(damaged or truncated) and repeat the last good frame{at_start}: "
              f"{_describe_frames(damaged, fps)}; the frame count and the audio sync are kept")


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
        x264 constant rate factor: 18 is visually lossless, +6 halves the size.  Widths that
        are not a multiple of 128 pixels come out about a fifth larger (see :func:`_x264_options`).
    preset : str
        x264 speed preset.
    threads : int
        Encoder threads.  Fixed rather than "auto" because x264's output depends on the thread
        count; with it pinned the same frames give the same bytes on every run, whatever the
        load, and on x86 machines with or without AVX-512 alike.

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

    try:
        # fflags=bitexact keeps the libavformat version string (and anything else that varies
        # between builds) out of the file.
        with staged_file(path) as tmp_name, \
                av.open(tmp_name, "w", format="mp4", container_options={"fflags": "+bitexact"}) as output:
            stream = output.add_stream("libx264", rate=fps, options=_x264_options(width, crf, preset))
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
    finally:
        if audio_input is not None:
            audio_input.close()
    return n


def _x264_options(width: int, crf: int, preset: str) -> dict[str, str]:
    """libx264 options for :func:`write_video`, chosen so the output bytes are reproducible.

    On CPUs with AVX-512, x264's macroblock-tree rate control (its AVX-512
    ``mbtree_propagate_list``, which handles 8 macroblocks at a time) reads memory it never
    wrote when a row is not a multiple of 8 macroblocks (128 pixels) wide, so the same frames
    give different bytes from one call to the next, depending on what the process allocated
    and freed before.  For such widths the macroblock tree is turned off -- files grow by about
    a fifth at the same ``crf`` -- which makes the output independent of memory contents
    (checked with glibc's ``MALLOC_PERTURB_``, see tests/test_video.py).  Widths that are a
    multiple of 128 (1280, 1920, 3840, ...) keep it: there it reads nothing uninitialised.
    """
    options = {"crf": str(crf), "preset": preset}
    if math.ceil(width / 16) % 8:
        options["x264-params"] = "mbtree=0"
    return options


def _check_frame(frame: np.ndarray, size: tuple[int, int] | None, index: int) -> tuple[int, int]:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame {index}: expected uint8 (H, W, 3) RGB, got {desc}")
    if size is not None and frame.shape[:2] != size:
        raise ValueError(f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} differs from "
                         f"the first frame's {size[1]}x{size[0]}")
    return frame.shape[0], frame.shape[1]
