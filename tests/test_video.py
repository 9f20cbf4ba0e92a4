"""Tests for restyle.video: probing, CFR decoding (incl. VFR resampling), writing, errors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import restyle.video
from clips import (cut_tail, make_audio_file, make_reproducible_clip, make_test_clip,
                   make_undecodable_clip, make_vfr_clip, overwrite_bytes, read_index)
from restyle.video import (VideoError, as_fraction, output_size, probe_video, read_frames,
                           write_video)

AAC_FRAME_S = 1024 / 48_000  # one AAC frame: the granularity of copied audio


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def stream_durations(path) -> tuple[float, float | None]:
    """(video, audio) stream durations in seconds, as the container states them."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return (float(video.duration * video.time_base),
                float(audio.duration * audio.time_base) if audio is not None else None)


@pytest.fixture(scope="module")
def clip_and_frames(tmp_path_factory):
    """make_test_clip's defaults (24 frames, 96x64, 24 fps, cut at frame 12, AAC audio): the
    file and the frames encoded into it."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = make_test_clip(path)
    return path, frames


# ------------------------------------------------------------------------------------ probe


def test_probe_reports_rate_count_size_and_audio(clip_and_frames):
    path, frames = clip_and_frames
    info = probe_video(path)
    assert info["fps_fraction"] == "24/1"
    assert info["fps"] == 24.0
    assert info["n_frames"] == len(frames) == 24
    assert (info["width"], info["height"]) == (96, 64)
    assert info["has_audio"] is True
    assert info["variable_frame_rate"] is False
    assert info["duration_s"] == pytest.approx(1.0)


def test_probe_counts_frames_by_decoding_when_container_does_not_say(tmp_path):
    # Matroska stores no frame count, so probe has to decode.
    path = tmp_path / "clip.mkv"
    make_test_clip(path, n_frames=10, cut_at=5, audio=False)
    info = probe_video(path)
    assert info["n_frames"] == 10
    assert info["has_audio"] is False
    assert info["fps_fraction"] == "24/1"


# ------------------------------------------------------------------------------------ read


def test_read_frames_yields_every_frame_close_to_the_source(clip_and_frames):
    path, frames = clip_and_frames
    decoded = list(read_frames(path))
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames):
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert psnr(got, want) > 35


@pytest.mark.parametrize("width", [48, 50, 47, 200])
def test_read_frames_resizes_to_even_dims_keeping_aspect(clip_and_frames, width):
    path, _ = clip_and_frames
    decoded = list(read_frames(path, width=width))
    h, w = decoded[0].shape[:2]
    assert w % 2 == 0 and h % 2 == 0
    assert w == width - width % 2
    assert abs(w / h - 96 / 64) < 0.1
    assert (w, h) == output_size(96, 64, width)
    assert len(decoded) == 24


def test_odd_sized_source_comes_out_even(tmp_path):
    path = tmp_path / "odd.mp4"
    make_test_clip(path, n_frames=4, cut_at=None, size=(97, 65), audio=False, pix_fmt="yuv444p")
    info = probe_video(path)
    assert (info["width"], info["height"]) == (97, 65)
    decoded = list(read_frames(path))
    assert decoded[0].shape == (64, 96, 3)


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotated_source_comes_out_upright(tmp_path, rotation):
    path = tmp_path / "rotated.mp4"
    frames = make_test_clip(path, n_frames=4, cut_at=None, audio=False, rotation=rotation)
    info = probe_video(path)
    assert (info["width"], info["height"]) == (64, 96)
    decoded = list(read_frames(path))
    assert decoded[0].shape == (96, 64, 3)
    assert psnr(decoded[0], np.rot90(frames[0], rotation // 90)) > 35


def test_vfr_clip_is_resampled_to_constant_rate(tmp_path):
    path = tmp_path / "vfr.mp4"
    frames, times = make_vfr_clip(path)
    info = probe_video(path)
    assert info["variable_frame_rate"] is True
    assert info["fps_fraction"] == "24/1"  # the average rate of the irregular stream
    duration = float(times[-1] - times[0])
    assert abs(info["n_frames"] - duration * 24) <= 1.5

    decoded = list(read_frames(path))
    assert len(decoded) == info["n_frames"]
    # Output frame k shows the latest source frame at or before k / 24 s.
    expected = [max(i for i, t in enumerate(times) if t <= Fraction(k, 24)) for k in range(len(decoded))]
    assert [read_index(frame) for frame in decoded] == expected
    # The resampling really repeated and dropped frames, as the irregular timing demands.
    assert len(set(expected)) < len(expected) and len(set(expected)) < len(frames)


# ------------------------------------------------------------------------------------ write


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    # Same bytes on every run: the encoder's frame types in the files written from it, and with
    # them the edit list FFmpeg reads a stream's duration from (in milliseconds), depend on it.
    path = tmp_path_factory.mktemp("ntsc") / "ntsc.mp4"
    make_reproducible_clip(path, n_frames=20, fps=Fraction(30000, 1001))
    return path, list(read_frames(path))


def test_write_then_probe_keeps_exact_rate_and_audio(ntsc_clip, tmp_path):
    source, frames = ntsc_clip
    out = tmp_path / "out.mp4"
    assert write_video(out, iter(frames), Fraction(30000, 1001), audio_source=source) == len(frames)
    info = probe_video(out)
    assert info["fps_fraction"] == "30000/1001"
    assert info["n_frames"] == len(frames)
    assert info["has_audio"] is True
    video_s, audio_s = stream_durations(out)
    assert video_s == pytest.approx(len(frames) * 1001 / 30000)
    assert abs(audio_s - video_s) <= AAC_FRAME_S
    for got, want in zip(read_frames(out), frames):
        assert psnr(got, want) > 35


@pytest.mark.parametrize("suffix", [".m4a", ".wav"], ids=["aac-copied", "pcm-reencoded"])
def test_longer_audio_is_trimmed_to_the_video(ntsc_clip, tmp_path, suffix):
    _, frames = ntsc_clip
    audio = tmp_path / f"long{suffix}"
    make_audio_file(audio, duration_s=3.0)
    out = tmp_path / "out.mp4"
    write_video(out, frames, "30000/1001", audio_source=audio)
    video_s, audio_s = stream_durations(out)
    assert abs(audio_s - video_s) <= AAC_FRAME_S
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"


def test_audio_source_without_audio_adds_no_track(ntsc_clip, tmp_path):
    _, frames = ntsc_clip
    silent = tmp_path / "silent.mp4"
    make_test_clip(silent, n_frames=4, cut_at=None, audio=False)
    out = tmp_path / "out.mp4"
    write_video(out, frames, "30000/1001", audio_source=silent)
    assert probe_video(out)["has_audio"] is False


@pytest.mark.parametrize("audio", ["copied", "reencoded", None])
def test_writing_the_same_frames_twice_gives_identical_bytes(ntsc_clip, tmp_path, audio):
    source, frames = ntsc_clip
    if audio == "reencoded":
        source = tmp_path / "audio.wav"
        make_audio_file(source, duration_s=1.0)
    elif audio is None:
        source = None
    digests = []
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / name, frames, "30000/1001", audio_source=source)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


# Writes a 96x64 clip (a width x264's AVX-512 macroblock-tree code over-reads at) and prints
# the file's digest; run with different MALLOC_PERTURB_ values, i.e. different leftover heap.
_DIGEST_SCRIPT = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from clips import synthetic_frames
from restyle.video import write_video
write_video(sys.argv[2], synthetic_frames(20, (96, 64), 10), "30000/1001")
with open(sys.argv[2], "rb") as handle:
    print(hashlib.sha256(handle.read()).hexdigest())
"""


def test_written_bytes_do_not_depend_on_leftover_heap_memory(tmp_path):
    # glibc fills new heap blocks with MALLOC_PERTURB_'s byte: an encoder reading memory it
    # never wrote gives different bytes for different values, every time rather than by
    # chance (elsewhere the variable is ignored and this passes trivially).
    digests = set()
    for perturb in ("0", "85", "170"):
        env = dict(os.environ, MALLOC_PERTURB_=perturb)
        run = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, str(Path(__file__).parent),
                              str(tmp_path / f"out{perturb}.mp4")],
                             env=env, capture_output=True, text=True, check=True)
        digests.add(run.stdout.strip())
    assert len(digests) == 1


def test_write_is_atomic_and_cleans_up_on_failure(ntsc_clip, tmp_path):
    _, frames = ntsc_clip
    out = tmp_path / "out.mp4"
    write_video(out, frames[:3], 24)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    before = out.read_bytes()
    bad = frames[:3] + [np.zeros((10, 10, 3), np.uint8)]  # size changes mid-stream
    with pytest.raises(ValueError, match="frame 3"):
        write_video(out, bad, 24)
    assert out.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temp file left


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "x.mp4", [], 24)
    with pytest.raises(ValueError, match="odd"):
        write_video(tmp_path / "x.mp4", [np.zeros((63, 96, 3), np.uint8)], 24)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", [np.zeros((64, 96, 3), np.float32)], 24)
    assert not (tmp_path / "x.mp4").exists()


def test_as_fraction_keeps_ntsc_rates_exact():
    assert as_fraction(29.97) == Fraction(30000, 1001)
    assert as_fraction(23.976) == Fraction(24000, 1001)
    assert as_fraction("30000/1001") == Fraction(30000, 1001)
    assert as_fraction(25) == Fraction(25)
    assert as_fraction(12.5) == Fraction(25, 2)


# ------------------------------------------------------------------------------------ errors


def _missing(tmp_path):
    return tmp_path / "missing_clip.mp4"


def _empty(tmp_path):
    path = tmp_path / "empty_clip.mp4"
    path.write_bytes(b"")
    return path


def _not_a_video(tmp_path):
    path = tmp_path / "notes_clip.mp4"
    path.write_text("this is not a video\n" * 50)
    return path


def _audio_only(tmp_path):
    path = tmp_path / "song_clip.m4a"
    make_audio_file(path, duration_s=0.5)
    return path


def _undecodable(tmp_path):
    path = tmp_path / "broken_clip.mkv"
    make_undecodable_clip(path)
    return path


@pytest.mark.parametrize("make, hint", [
    (_missing, "check the path"),
    (_empty, "re-export"),
    (_not_a_video, "not a readable video"),
    (_audio_only, "no video stream"),
    (_undecodable, "no decodable video frame"),
], ids=["missing", "empty", "not-a-video", "audio-only", "undecodable"])
def test_errors_are_one_line_and_name_the_file(tmp_path, make, hint):
    path = make(tmp_path)
    for call in (probe_video, read_frames):  # read_frames fails at call time, not on next()
        with pytest.raises(VideoError) as err:
            call(path)
        message = str(err.value)
        assert "\n" not in message
        assert path.name in message
        assert hint in message
        assert "; " in message  # problem; fix
    assert issubclass(VideoError, ValueError)


def test_missing_audio_source_is_reported(ntsc_clip, tmp_path):
    _, frames = ntsc_clip
    with pytest.raises(VideoError, match="no_such_audio.wav"):
        write_video(tmp_path / "out.mp4", frames, 24, audio_source=tmp_path / "no_such_audio.wav")
    assert not (tmp_path / "out.mp4").exists()


# ------------------------------------------------------------------------------------ damaged files

N_DAMAGED = 48  # frames of the clips damaged below (24 fps, cut at frame 24)


def frames_stored_in(path, byte_range: range) -> list[int]:
    """Numbers (in presentation order) of the video frames whose packets overlap ``byte_range``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.pos, p.size) for p in container.demux(stream) if p.size]
    order = sorted(pts for pts, _, _ in packets)
    return sorted(order.index(pts) for pts, pos, size in packets
                  if pos < byte_range.stop and pos + size > byte_range.start)


def damaged_ranges(message: str) -> list[tuple[int, int, float, float]]:
    """``(first, last, start_s, end_s)`` of each range a damage message names."""
    found = re.findall(r"(\d+)(?:-(\d+))? \((\d+\.\d\d)-(\d+\.\d\d) s\)", message)
    return [(int(a), int(b or a), float(t0), float(t1)) for a, b, t0, t1 in found]


@pytest.fixture(scope="module")
def damaged_clip(tmp_path_factory):
    """(undamaged clip, the same with bytes 30-60 % overwritten by noise, frames hit)."""
    folder = tmp_path_factory.mktemp("damaged")
    good, bad = folder / "good.mp4", folder / "bad_clip.mp4"
    make_reproducible_clip(good, n_frames=N_DAMAGED)
    shutil.copy(good, bad)
    hit = frames_stored_in(good, overwrite_bytes(bad, 0.3, 0.6))
    return good, bad, hit


def test_damaged_middle_fails_naming_the_file_the_frames_and_the_fix(damaged_clip):
    _, bad, hit = damaged_clip
    assert 0 < hit[0] and hit[-1] < N_DAMAGED - 1  # the noise sits in the middle
    for call in (probe_video, read_frames):  # found at probe time: before any job runs
        with pytest.raises(VideoError) as err:
            call(bad)
        message = str(err.value)
        assert "\n" not in message and bad.name in message
        assert "cannot be decoded" in message and "decode_errors: repair" in message
        ranges = damaged_ranges(message)
        first, last = ranges[0][0], ranges[-1][1]
        # Every frame hit is named, and few others: B-frames referencing them, P-frames
        # up to the next keyframe.
        assert first <= hit[0] and last >= hit[-1]
        assert hit[0] - first <= 3 and last < N_DAMAGED
        for a, b, start_s, end_s in ranges:
            assert start_s == pytest.approx(a / 24, abs=0.006)
            assert end_s == pytest.approx((b + 1) / 24, abs=0.006)


def test_damage_the_packet_check_misses_is_found_while_decoding(damaged_clip, monkeypatch):
    good, bad, _ = damaged_clip
    with pytest.raises(VideoError) as expected:
        probe_video(bad)
    monkeypatch.setattr(restyle.video, "_well_framed", lambda data, length_size: True)
    assert probe_video(bad)["n_frames"] == N_DAMAGED  # the damage no longer shows here ...
    frames = read_frames(bad)
    with pytest.raises(VideoError) as err:  # ... but still when decoding
        list(frames)
    assert str(err.value) == str(expected.value)


def test_repair_keeps_the_frame_count_and_warns(damaged_clip, capsys, caplog):
    good, bad, _ = damaged_clip
    assert probe_video(bad, decode_errors="repair")["n_frames"] == probe_video(good)["n_frames"] == N_DAMAGED
    with caplog.at_level(logging.WARNING, logger="restyle"):
        frames = list(read_frames(bad, decode_errors="repair"))
    assert len(frames) == N_DAMAGED

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restyle: warning: ")
    warning = lines[0]
    assert bad.name in warning
    ranges = damaged_ranges(warning)
    repeated = [k for a, b, _, _ in ranges for k in range(a, b + 1)]
    assert f"{len(repeated)} frames could not be decoded" in warning
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        warning.removeprefix("restyle: warning: ")]

    reference = list(read_frames(good))
    first = repeated[0]
    assert first > 0
    for k in range(first):  # before the damage: decoded as from the undamaged file
        assert np.array_equal(frames[k], reference[k])
    for a, b, _, _ in ranges:  # in it: the last good frame, repeated
        for k in range(a, b + 1):
            assert np.array_equal(frames[k], frames[a - 1])


def test_repair_of_damage_at_the_very_start_uses_the_first_good_frame(tmp_path, capsys):
    good, bad = tmp_path / "good.mp4", tmp_path / "bad_start.mp4"
    make_reproducible_clip(good, n_frames=N_DAMAGED, audio=False, keyint=12)
    with av.open(str(good)) as container:  # the first packet: frame 0, a keyframe
        packet = next(p for p in container.demux(video=0) if p.size)
    size = good.stat().st_size
    shutil.copy(good, bad)
    overwrite_bytes(bad, packet.pos / size, (packet.pos + packet.size) / size)
    with pytest.raises(VideoError, match=r"bad_start\.mp4: frames 0-"):
        probe_video(bad)
    frames = list(read_frames(bad, decode_errors="repair"))
    assert len(frames) == N_DAMAGED
    (first, last, _, _), = damaged_ranges(capsys.readouterr().err)
    assert first == 0
    for k in range(last + 1):
        assert np.array_equal(frames[k], frames[last + 1])


@pytest.mark.parametrize("suffix, faststart", [(".mkv", False), (".mp4", True)],
                         ids=["mkv", "mp4-index-first"])
def test_truncated_file_fails_naming_the_lost_tail_and_repair_pads_it(tmp_path, suffix, faststart, capsys):
    path = tmp_path / f"cut_clip{suffix}"
    make_reproducible_clip(path, n_frames=N_DAMAGED, faststart=faststart)
    cut_tail(path, keep=0.6)
    with pytest.raises(VideoError) as err:
        probe_video(path)
    message = str(err.value)
    assert path.name in message and "decode_errors: repair" in message
    assert damaged_ranges(message)[-1][1] == N_DAMAGED - 1  # up to the last frame
    assert damaged_ranges(message)[-1][3] == pytest.approx(2.0)

    assert probe_video(path, decode_errors="repair")["n_frames"] == N_DAMAGED
    frames = list(read_frames(path, decode_errors="repair"))
    assert len(frames) == N_DAMAGED
    assert "restyle: warning: " in capsys.readouterr().err
    assert np.array_equal(frames[-1], frames[damaged_ranges(message)[-1][0] - 1])


def test_truncated_mp4_with_its_index_at_the_end_is_reported(tmp_path):
    path = tmp_path / "cut_clip.mp4"
    make_reproducible_clip(path, n_frames=N_DAMAGED)
    cut_tail(path, keep=0.9)  # the index (moov) is gone: nothing to repair
    for mode in ("fail", "repair"):
        with pytest.raises(VideoError, match=r"cut_clip\.mp4: .*truncated"):
            probe_video(path, decode_errors=mode)


def test_edit_list_trimmed_start_reads_the_probed_frame_count(tmp_path):
    # Frames before t = 0 are cut by the mp4 edit list: stored, but never shown.
    path = tmp_path / "trimmed.mp4"
    frames = make_test_clip(path, n_frames=12, cut_at=None, audio=False)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"crf": "12", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        packets = []
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i - 3
            packets += stream.encode(frame)
        container.mux(packets + stream.encode(None))
    info = probe_video(path)
    assert info["n_frames"] == 9
    assert len(list(read_frames(path))) == 9


def test_decode_errors_mode_is_checked(clip_and_frames):
    path, _ = clip_and_frames
    with pytest.raises(ValueError, match="decode_errors"):
        probe_video(path, decode_errors="ignore")
