"""Loading media for the model side (`tunelab.data.media`): sizes, colours, frames and samples as the anchor's
mm_plugin makes them, and one clear message for every reference that cannot be read."""

from __future__ import annotations

import base64
import io
import math
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tunelab.config.model_args import ModelArguments
from tunelab.data import media
from tunelab.data.media import (
    MediaOptions,
    count_markers,
    load_audio,
    load_image,
    load_video,
    resample_linear,
    resized_size,
    sample_frame_indices,
)
from tunelab.errors import MissingPackageError, UserError


def _anchor_size(width: int, height: int, max_pixels: int, min_pixels: int) -> tuple[int, int]:
    """LLaMA-Factory's MMPluginMixin._preprocess_image, transcribed (the oracle)."""
    if width * height > max_pixels:
        factor = math.sqrt(max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < min_pixels:
        factor = math.sqrt(min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    return width, height


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# ---- images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "expected"), [
    ((2000, 1000), (1086, 543)),  # sqrt(589824 / 2e6) = 0.54306: int(1086.1), int(543.06)
    ((1000, 1000), (768, 768)),
    ((768, 768), (768, 768)),  # at the limit: unchanged
    ((10, 20), (22, 45)),  # below 32*32: sqrt(1024 / 200) = 2.2627
    ((300, 200), (300, 200)),  # inside the range
    ((8000, 100), (6869, 85)),  # sqrt(589824 / 8e5) = 0.85865
])  # fmt: skip
def test_the_resize_rule_is_the_anchors(size, expected):
    assert resized_size(*size, 768 * 768, 32 * 32) == expected == _anchor_size(*size, 768 * 768, 32 * 32)


def test_a_side_that_would_truncate_to_zero_keeps_one_pixel():
    with pytest.raises(ZeroDivisionError):  # the anchor's 707 x 0 then fails its min_pixels step
        _anchor_size(5000, 1, 100, 1)
    assert resized_size(5000, 1, 100, 1) == (707, 1)


def test_load_image_resizes_a_file_by_the_options(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (2000, 1000), (10, 20, 30)).save(path)
    assert load_image(str(path), MediaOptions()).size == (1086, 543)
    small = load_image(str(path), MediaOptions(image_max_pixels=100 * 50, image_min_pixels=16))
    assert small.size == _anchor_size(2000, 1000, 5000, 16) == (100, 50)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (4, 8), (1, 2, 3)).save(tiny)
    assert load_image(tiny, MediaOptions()).size == (22, 45)


def test_rgba_and_palette_pictures_become_rgb_dropping_alpha_as_the_anchor(tmp_path):
    rgba = Image.new("RGBA", (40, 40), (200, 100, 50, 10))
    out = load_image(rgba, MediaOptions())
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (200, 100, 50)
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([9, 8, 7] + [0] * 765)
    path = tmp_path / "p.gif"
    palette.save(path)
    assert load_image(str(path), MediaOptions()).getpixel((0, 0)) == (9, 8, 7)


def test_data_urls_bytes_and_the_anchors_dict_forms_decode_to_the_same_picture(tmp_path):
    picture = Image.new("RGB", (50, 40), (1, 2, 3))
    picture.putpixel((3, 4), (250, 0, 0))
    data = _png(picture)
    (tmp_path / "a.png").write_bytes(data)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    refs = [url, data, {"bytes": data, "path": None}, {"path": str(tmp_path / "a.png")}, str(tmp_path / "a.png"),
            (tmp_path / "a.png").as_uri()]  # fmt: skip
    for ref in refs:
        image = load_image(ref, MediaOptions())
        assert image.size == (50, 40) and image.getpixel((3, 4)) == (250, 0, 0) and image.getpixel((0, 0)) == (1, 2, 3)


def test_a_file_that_is_not_a_picture_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(b"this is not a picture")
    with pytest.raises(UserError) as info:
        load_image(str(path), MediaOptions())
    assert str(info.value) == f"{path}: not a picture Pillow can read; give a PNG, JPEG, WebP, GIF or BMP file"
    with pytest.raises(UserError, match=r"image .*missing\.png: no such file"):
        load_image(str(tmp_path / "missing.png"), MediaOptions())
    with pytest.raises(UserError, match="not valid base64"):
        load_image("data:image/png;base64,%%%", MediaOptions())


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://10.0.0.1/a.jpg", "s3://bucket/a.png"])
def test_remote_urls_are_refused_never_fetched(url):
    with pytest.raises(UserError) as info:
        load_image(url, MediaOptions())
    assert str(info.value) == (f"image {url}: remote media are not fetched (tunelab never downloads media); "
                               "download the file and give its path (relative to media_dir, or absolute)")


def test_options_come_from_the_model_keys_and_refuse_max_below_min():
    args = ModelArguments(image_max_pixels=1000, image_min_pixels=10, video_max_pixels=500, video_min_pixels=5,
                          video_fps=1.5, video_maxlen=7, audio_sampling_rate=8000)  # fmt: skip
    assert MediaOptions.from_model_args(args) == MediaOptions(1000, 10, 500, 5, 1.5, 7, 8000)
    assert MediaOptions.from_model_args(ModelArguments()) == MediaOptions()
    with pytest.raises(UserError, match=r"video_max_pixels \(10\) is smaller than video_min_pixels \(20\)"):
        MediaOptions(video_max_pixels=10, video_min_pixels=20)


def test_markers_are_counted_by_column():
    assert media.MARKERS == {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
    assert count_markers("<image>a<image><audio>") == {"images": 2, "videos": 0, "audios": 1}


# ---- videos ---------------------------------------------------------------------------------------------


def _frames(folder: Path, count: int, size: tuple[int, int] = (64, 64)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i + 1}.png"  # frame_1 ... frame_10: natural order differs from plain sorting
        Image.new("RGB", size, (i * 20, 0, 0)).save(path)
        paths.append(path)
    return paths


def test_a_folder_of_frames_is_read_in_natural_order_at_video_fps(tmp_path):
    _frames(tmp_path / "clip", 10)
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    clip = load_video(str(tmp_path / "clip"), MediaOptions())
    assert [frame.getpixel((0, 0))[0] for frame in clip.frames] == [i * 20 for i in range(10)]
    assert clip.fps == 2.0 and all(frame.mode == "RGB" for frame in clip.frames)


def test_frames_beyond_video_maxlen_are_spread_evenly_and_the_rate_says_so(tmp_path):
    paths = _frames(tmp_path / "clip", 7)
    clip = load_video([str(p) for p in paths], MediaOptions(video_maxlen=3, video_fps=2.0))
    assert [frame.getpixel((0, 0))[0] for frame in clip.frames] == [0, 60, 120]  # frames 0, 3, 6
    assert clip.fps == pytest.approx(2.0 * 3 / 7)


def test_frames_are_resized_with_the_video_pixel_keys(tmp_path):
    paths = _frames(tmp_path / "big", 2, size=(512, 512))
    clip = load_video(tuple(str(p) for p in paths), MediaOptions())
    assert [f.size for f in clip.frames] == [(256, 256)] * 2  # video_max_pixels 256*256
    clip = load_video(tuple(str(p) for p in paths), MediaOptions(video_max_pixels=128 * 64, video_min_pixels=16))
    assert clip.frames[0].size == _anchor_size(512, 512, 128 * 64, 16)


def test_an_empty_folder_and_a_bad_frame_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="the folder holds no frame pictures"):
        load_video(str(tmp_path / "empty"), MediaOptions())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    with pytest.raises(UserError, match=f"{bad}: not a picture Pillow can read"):
        load_video([str(bad)], MediaOptions())


def test_sampling_a_video_file_follows_the_anchors_indices():
    # 300 frames over 10 s at video_fps 2: floor(10 * 2) = 20 frames, np.linspace(0, 299, 20) truncated
    assert sample_frame_indices(300, 10.0, 2.0, 128) == [int(i) for i in np.linspace(0, 299, 20).astype(np.int32)]
    assert sample_frame_indices(300, 10.0, 2.0, 128)[:4] == [0, 15, 31, 47]
    assert sample_frame_indices(300, 100.0, 2.0, 8) == [0, 42, 85, 128, 170, 213, 256, 299]  # video_maxlen caps
    assert sample_frame_indices(5, 100.0, 2.0, 128) == [0, 1, 2, 3, 4]  # never more than the frames there are
    assert sample_frame_indices(30, 0.2, 2.0, 128) == [0]  # at least one
    assert sample_frame_indices(0, None, 2.0, 4) == [0, 1, 2, 3]  # unknown length: the anchor's 0 .. maxlen - 1


def test_a_video_file_without_pyav_names_the_install_command(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    monkeypatch.setattr(media, "is_installed", lambda package: package != "av")
    with pytest.raises(MissingPackageError) as info:
        load_video(str(path), MediaOptions())
    assert str(info.value) == (f"reading the video file {path} needs the package 'av', which is not installed. "
                               "Install it with: pip install av")


# ---- audio ----------------------------------------------------------------------------------------------


def _wav(path: Path, frames: np.ndarray, rate: int, width: int) -> Path:
    """Integer samples (n, channels) written as a PCM WAV of `width` bytes per sample."""
    channels = frames.shape[1]
    if width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in frames.reshape(-1))
    else:
        raw = frames.astype({1: "u1", 2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(raw)
    return path


def test_a_16_bit_stereo_8khz_wav_becomes_mono_float32_at_16khz(tmp_path):
    n = 800  # 0.1 s
    left = (np.arange(n) * 40 - 16000).astype(np.int16)
    right = (np.arange(n) * -10 + 3000).astype(np.int16)
    path = _wav(tmp_path / "a.wav", np.stack([left, right], axis=1), 8000, 2)
    audio = load_audio(str(path), MediaOptions())
    mono = (left.astype(np.float32) + right.astype(np.float32)) / 2 / 32768
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) == 1600  # ceil(800 * 16000 / 8000)
    np.testing.assert_allclose(audio[0::2], mono, rtol=0, atol=1e-7)  # every other sample is an input sample
    np.testing.assert_allclose(audio[1:-1:2], (mono[:-1] + mono[1:]) / 2, rtol=0, atol=1e-7)  # between: the mean
    assert audio[-1] == pytest.approx(mono[-1])  # past the last input sample it is held


def test_no_resampling_at_the_target_rate_and_an_odd_ratio_length():
    samples = np.linspace(-1, 1, 443, dtype=np.float32)
    assert resample_linear(samples, 16000, 16000) is not samples
    np.testing.assert_array_equal(resample_linear(samples, 16000, 16000), samples)
    assert len(resample_linear(samples, 44100, 16000)) == math.ceil(443 * 16000 / 44100) == 161
    np.testing.assert_allclose(resample_linear(samples, 44100, 16000)[:3],
                               np.interp([0, 44100 / 16000, 2 * 44100 / 16000], np.arange(443), samples), atol=1e-7)


@pytest.mark.parametrize(("width", "values", "expected"), [
    (1, [0, 128, 255], [-1.0, 0.0, 127 / 128]),
    (3, [-(1 << 23), 0, (1 << 23) - 1], [-1.0, 0.0, ((1 << 23) - 1) / (1 << 23)]),
    (4, [-(1 << 31), 1 << 30, 0], [-1.0, 0.5, 0.0]),
])  # fmt: skip
def test_8_24_and_32_bit_pcm_are_scaled_to_minus_one_one(tmp_path, width, values, expected):
    path = _wav(tmp_path / "a.wav", np.array(values, dtype=np.int64).reshape(-1, 1), 16000, width)
    np.testing.assert_allclose(load_audio(path, MediaOptions()), np.array(expected, dtype=np.float32), atol=1e-7)


def test_a_wav_data_url_and_an_array_are_audio_too(tmp_path):
    path = _wav(tmp_path / "a.wav", np.array([[0], [16384], [-16384]]), 16000, 2)
    url = "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()
    np.testing.assert_allclose(load_audio(url, MediaOptions()), [0.0, 0.5, -0.5])
    array = np.array([0.25, -0.25], dtype=np.float64)
    assert load_audio(array, MediaOptions()).dtype == np.float32
    with pytest.raises(UserError, match=r"audio array of shape \(2, 2\): give a 1-D \(mono\) array"):
        load_audio(np.zeros((2, 2)), MediaOptions())


def test_other_audio_formats_without_soundfile_name_the_install_command(tmp_path, monkeypatch):
    path = tmp_path / "a.mp3"
    path.write_bytes(b"ID3\x03\x00junk")
    monkeypatch.setattr(media, "is_installed", lambda package: package != "soundfile")
    with pytest.raises(MissingPackageError) as info:
        load_audio(str(path), MediaOptions())
    assert str(info.value) == (f"reading {path} (only integer PCM WAV is read without it) needs the package "
                               "'soundfile', which is not installed. Install it with: pip install soundfile")


def test_an_empty_or_missing_audio_is_a_user_error(tmp_path):
    empty = _wav(tmp_path / "empty.wav", np.zeros((0, 1)), 16000, 2)
    with pytest.raises(UserError, match=f"{empty}: the audio has no samples"):
        load_audio(str(empty), MediaOptions())
    with pytest.raises(UserError, match="no such file"):
        load_audio(str(tmp_path / "gone.wav"), MediaOptions())


# ---- with the optional packages (skipped where they are not installed) -----------------------------------


def test_a_video_file_is_sampled_at_video_fps_with_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:  # 30 frames at 10 fps: 3 s, red channel i * 8
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            picture = np.zeros((48, 64, 3), np.uint8)
            picture[:, :, 0] = i * 8
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = load_video(str(path), MediaOptions())
    # floor(3 s * 2 fps) = 6 frames: np.linspace(0, 29, 6) -> 0, 5, 11, 17, 23, 29 (red 0, 40, 88, ... lossy)
    reds = [frame.getpixel((5, 5))[0] for frame in clip.frames]
    assert len(reds) == 6 and clip.fps == pytest.approx(2.0)
    assert all(abs(red - 8 * i) <= 12 for red, i in zip(reds, [0, 5, 11, 17, 23, 29]))
    short = load_video(str(path), MediaOptions(video_maxlen=2, video_max_pixels=32 * 24, video_min_pixels=16))
    assert len(short.frames) == 2 and short.frames[0].size == (32, 24) and short.fps == pytest.approx(2 / 3)
    url = "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
    assert len(load_video(url, MediaOptions()).frames) == 6
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="bad.mp4: not a video PyAV can read"):
        load_video(str(tmp_path / "bad.mp4"), MediaOptions())


def test_flac_and_float_wav_are_read_with_soundfile(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    samples = np.linspace(-0.5, 0.5, 8000).astype(np.float32)
    soundfile.write(str(tmp_path / "a.flac"), np.stack([samples, samples], axis=1), 8000)
    audio = load_audio(str(tmp_path / "a.flac"), MediaOptions())
    assert audio.shape == (16000,) and audio.dtype == np.float32
    np.testing.assert_allclose(audio[::2], samples, atol=1e-4)  # 16-bit FLAC: within its quantisation
    soundfile.write(str(tmp_path / "f.wav"), samples, 16000, subtype="FLOAT")  # not integer PCM: soundfile reads it
    np.testing.assert_allclose(load_audio(str(tmp_path / "f.wav"), MediaOptions()), samples)


def test_an_object_whose_bytes_are_not_bytes_is_a_user_error():
    with pytest.raises(UserError, match="image: expected a file path, a data URL or bytes, got int"):
        load_image({"bytes": 12, "path": None}, MediaOptions())
