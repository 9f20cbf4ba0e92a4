"""Tests for restyle.video: probing, CFR decoding (incl. VFR resampling), writing, errors."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest

from clips import (make_audio_file, make_test_clip, make_undecodable_clip, make_vfr_clip,
                   read_index)
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
def clip(tmp_path_factory):
    """The standard test clip: 24 frames, 96x64, 24 fps, cut at frame 12, AAC audio."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames = make_test_clip(path)
    return path, frames


# ------------------------------------------------------------------------------------ probe


def test_probe_reports_rate_count_size_and_audio(clip):
    path, frames = clip
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


def test_read_frames_yields_every_frame_close_to_the_source(clip):
    path, frames = clip
    decoded = list(read_frames(path))
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames):
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert psnr(got, want) > 35


@pytest.mark.parametrize("width", [48, 50, 47, 200])
def test_read_frames_resizes_to_even_dims_keeping_aspect(clip, width):
    path, _ = clip
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
    path = tmp_path_factory.mktemp("ntsc") / "ntsc.mp4"
    make_test_clip(path, n_frames=20, cut_at=10, fps="30000/1001")
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
