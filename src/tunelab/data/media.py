"""Turning a media reference of a data set into what a model's processor takes.

A row names its media as file paths, `data:` URLs, raw bytes or the anchor's `{"path": ..., "bytes": ...}`
objects; a processor wants a resized RGB picture, a clip of frames and its frame rate, a mono waveform at
the model's sampling rate. The sizes, frame sampling and channel mixing follow LLaMA-Factory's
`data/mm_plugin.py` (`_preprocess_image`, `_get_video_sample_indices`, `_regularize_videos`,
`_regularize_audios`), so `image_max_pixels` and the other media keys keep the anchor's meaning and a
picture becomes as many tokens as it does there. It is also where the markers (`<image>` ...) are
counted. It does not tokenize or call a processor (`encode_media.py` does), and it never touches the
network: a remote URL is refused with the fix (download the file and give its path).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import io
import math
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from tunelab.errors import MissingPackageError, UserError
from tunelab.optional_packages import is_installed

if TYPE_CHECKING:
    from PIL.Image import Image

    from tunelab.config.model_args import ModelArguments

#: the anchor's placeholders (IMAGE_PLACEHOLDER ...): one in the text per file of the column, in order
MARKERS: dict[str, str] = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
#: a media reference as a row or a caller gives it (after `RowChecker.media`, rows hold strings, or a
#: tuple of frame paths for a video given as its frames)
MediaRef = Any
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DATA_URL = re.compile(r"^data:(?P<mime>[^,;]*)(?P<params>(?:;[^,;]*)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True)
class MediaOptions:
    """The media keys of the anchor's ProcessorArguments, with its defaults; one record travels from the
    config to every loader (and is part of the tokenized-data cache key, see `encode_media.py`)."""

    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    video_fps: float = 2.0
    video_maxlen: int = 128
    audio_sampling_rate: int = 16000

    def __post_init__(self) -> None:
        # the anchor's ProcessorArguments.__post_init__ refuses the same two contradictions
        for kind in ("image", "video"):
            largest, smallest = getattr(self, f"{kind}_max_pixels"), getattr(self, f"{kind}_min_pixels")
            if largest < smallest:
                raise UserError(f"{kind}_max_pixels ({largest}) is smaller than {kind}_min_pixels ({smallest}); "
                                f"raise {kind}_max_pixels or lower {kind}_min_pixels")

    @classmethod
    def from_model_args(cls, args: ModelArguments) -> MediaOptions:
        """The media keys of a run's `ModelArguments`."""
        return cls(
            image_max_pixels=args.image_max_pixels, image_min_pixels=args.image_min_pixels,
            video_max_pixels=args.video_max_pixels, video_min_pixels=args.video_min_pixels,
            video_fps=args.video_fps, video_maxlen=args.video_maxlen, audio_sampling_rate=args.audio_sampling_rate,
        )  # fmt: skip


@dataclass(frozen=True)
class VideoClip:
    """The frames kept of one video, resized, and the rate they stand for (frames per second of video),
    which Qwen-VL's processors turn into the time between temporal patches."""

    frames: list[Image]
    fps: float


def count_markers(text: str) -> dict[str, int]:
    """How many `<image>` / `<video>` / `<audio>` markers `text` holds, by column name."""
    return {column: text.count(marker) for column, marker in MARKERS.items()}


# ---- references -----------------------------------------------------------------------------------------


def is_remote(ref: str) -> bool:
    """An `http(s)://`, `s3://` ... address: never fetched (`file://` is a local path)."""
    return bool(_REMOTE.match(ref)) and not ref.lower().startswith("file://")


def remote_reason(ref: str) -> str:
    return (f"{ref}: remote media are not fetched (tunelab never downloads media); download the file and give "
            "its path (relative to media_dir, or absolute)")


def data_url(data: bytes, kind: str) -> str:
    """Bytes of a row (parquet's `{"bytes": ...}`) as a `data:` URL, so an `Example` holds only strings; the
    media type is read from the file's first bytes where it is a common one."""
    mime = _sniff_mime(data) or {"images": "image", "videos": "video", "audios": "audio"}.get(kind, "application")
    mime = mime if "/" in mime else f"{mime}/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if data[8:12] == b"WEBP" else "audio/wav"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def decode_data_url(url: str, what: str) -> bytes:
    """The bytes of `data:[<type>][;base64],<data>` (RFC 2397), or a UserError saying what is wrong with it."""
    match = _DATA_URL.match(url)
    if match is None:
        raise UserError(f"{what} {_short(url)}: a data URL must look like data:<type>;base64,<data>")
    if not match["b64"]:
        return urllib.parse.unquote_to_bytes(match["data"])
    try:
        return base64.b64decode("".join(match["data"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{what} {_short(url)}: the data after ';base64,' is not valid base64") from None


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _bytes_or_path(ref: MediaRef, what: str) -> tuple[bytes | None, str]:
    """(bytes, name) for data URLs, bytes and `{"bytes": ...}`; (None, path) for a local file. The name
    is how messages call the reference."""
    if isinstance(ref, Mapping):
        ref = ref["bytes"] if ref.get("bytes") is not None else ref.get("path")
    if isinstance(ref, (bytes, bytearray, memoryview)):
        return bytes(ref), f"{what} bytes"
    if not isinstance(ref, (str, Path)):
        raise UserError(f"{what}: expected a file path, a data URL or bytes, got {type(ref).__name__}")
    ref = str(ref)
    if ref.startswith("data:"):
        return decode_data_url(ref, what), f"{what} data URL {_short(ref)}"
    if is_remote(ref):
        raise UserError(f"{what} {remote_reason(ref)}")
    if ref.lower().startswith("file://"):
        ref = urllib.request.url2pathname(urllib.parse.urlparse(ref).path)
    if not Path(ref).is_file():
        raise UserError(f"{what} {ref}: no such file (a relative path is looked up in media_dir, then as given)")
    return None, ref


def _optional(module: str, feature: str) -> ModuleType:
    """Import an optional package, or stop with the command that installs it (`optional_packages.py`)."""
    if not is_installed(module):
        raise MissingPackageError(module, feature)
    return importlib.import_module(module)


# ---- images ---------------------------------------------------------------------------------------------


def resized_size(width: int, height: int, max_pixels: int, min_pixels: int) -> tuple[int, int]:
    """The anchor's size rule (`MMPluginMixin._preprocess_image`): above `max_pixels`, both sides are scaled
    by sqrt(max_pixels / (w * h)); below `min_pixels`, by sqrt(min_pixels / (w * h)); each product is
    truncated with int(). A side that would truncate to 0 (a 5000 x 1 strip) is kept at 1 pixel, where the
    anchor fails (a division by zero in its min_pixels step, or PIL's "height and width must be > 0")."""
    if width * height > max_pixels:
        factor = math.sqrt(max_pixels / (width * height))
        width, height = max(1, int(width * factor)), max(1, int(height * factor))
    if width * height < min_pixels:
        factor = math.sqrt(min_pixels / (width * height))
        width, height = max(1, int(width * factor)), max(1, int(height * factor))
    return width, height


def preprocess_image(image: Image, max_pixels: int, min_pixels: int) -> Image:
    """Resize by `resized_size` with PIL's default filter, then convert to RGB, in the anchor's order
    (`_preprocess_image`): `convert("RGB")` drops an alpha channel rather than blending it onto a colour."""
    size = resized_size(image.width, image.height, max_pixels, min_pixels)
    if size != (image.width, image.height):
        image = image.resize(size)
    return image if image.mode == "RGB" else image.convert("RGB")


def _open_image(ref: MediaRef, what: str = "image") -> Image:
    from PIL import Image as PILImage

    if isinstance(ref, PILImage.Image):
        return ref
    data, name = _bytes_or_path(ref, what)
    try:
        with PILImage.open(io.BytesIO(data) if data is not None else name) as opened:
            opened.load()  # decode now, inside the try, so a truncated file is reported here
            return opened.copy()
    except (PILImage.UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        reason = "not a picture Pillow can read" if isinstance(error, PILImage.UnidentifiedImageError) else \
                 f"damaged or unsupported picture ({error})"  # fmt: skip
        raise UserError(f"{name}: {reason}; give a PNG, JPEG, WebP, GIF or BMP file") from None


def load_image(ref: MediaRef, options: MediaOptions) -> Image:
    """One picture as an RGB PIL image, sized by image_max_pixels / image_min_pixels (the anchor's
    `_regularize_images` + `_preprocess_image`). `ref`: a path, a `data:image/...;base64,...` URL, bytes,
    a PIL image, or the anchor's `{"path": ...}` / `{"bytes": ...}` object."""
    return preprocess_image(_open_image(ref), options.image_max_pixels, options.image_min_pixels)


# ---- videos ---------------------------------------------------------------------------------------------


def sample_frame_indices(total_frames: int, duration_s: float | None, fps: float, maxlen: int) -> list[int]:
    """The anchor's `_get_video_sample_indices`: `floor(duration * video_fps)` frames (at least one), at
    most `video_maxlen` and at most every frame, spread evenly with `np.linspace(0, total - 1, n)`
    truncated to integers. A stream that does not know its frame count gets indices 0 .. maxlen - 1."""
    if total_frames <= 0:
        return [int(i) for i in np.linspace(0, maxlen - 1, maxlen).astype(np.int32)]
    # without a duration (the anchor would fail on None), every frame is a candidate, still capped at maxlen
    wanted = max(1, math.floor(duration_s * fps)) if duration_s else total_frames
    wanted = min(total_frames, maxlen, wanted)
    return [int(i) for i in np.linspace(0, total_frames - 1, wanted).astype(np.int32)]


def _natural_key(path: Path) -> list[Any]:
    """frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str) -> list[str]:
    """The pictures of a folder of frames, in natural name order (frame_2 before frame_10)."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return [str(p) for p in sorted(files, key=_natural_key)]


def load_video(ref: MediaRef, options: MediaOptions) -> VideoClip:
    """A video's frames, each sized by video_max_pixels / video_min_pixels, and their frame rate.

    - Frames given as pictures (a list of frame references, or a folder of pictures in natural name
      order): as in the anchor they are taken as already sampled at `video_fps`; beyond `video_maxlen`
      frames, `video_maxlen` are kept, spread evenly (the anchor keeps them all), and the rate says so.
    - A video file (path, data URL or bytes) is decoded with PyAV (`pip install av`) and sampled at
      `video_fps`, at most `video_maxlen` frames (the anchor's `_regularize_videos`); the rate is the
      frames kept per second of video, as the anchor's Qwen2-VL plugin computes it.

    The frame count is not made even here: the anchor does that in its Qwen2-VL plugin only, by repeating
    the last frame, and transformers' Qwen-VL video processors pad the same way themselves.
    """
    if isinstance(ref, (list, tuple)):
        return _clip_of_frames(list(ref), options, f"video of {len(ref)} frames")
    if isinstance(ref, (str, Path)) and not str(ref).startswith("data:") and Path(ref).is_dir():
        files = frame_files(str(ref))
        if not files:
            raise UserError(f"video {ref}: the folder holds no frame pictures ({', '.join(FRAME_SUFFIXES)})")
        return _clip_of_frames(files, options, f"video {ref}")
    return _decode_video(ref, options)


def _clip_of_frames(frames: list[MediaRef], options: MediaOptions, what: str) -> VideoClip:
    if not frames:
        raise UserError(f"{what}: a video given as frames needs at least one frame")
    keep = frames
    if len(frames) > options.video_maxlen:
        picked = np.linspace(0, len(frames) - 1, options.video_maxlen).astype(np.int32)
        keep = [frames[int(i)] for i in picked]
    pictures = [preprocess_image(_open_image(f, "video frame"), options.video_max_pixels, options.video_min_pixels)
                for f in keep]  # fmt: skip
    return VideoClip(pictures, options.video_fps * len(keep) / len(frames))


def _decode_video(ref: MediaRef, options: MediaOptions) -> VideoClip:
    data, name = _bytes_or_path(ref, "video")
    av = _optional("av", f"reading the video file {name}")
    try:
        with av.open(io.BytesIO(data) if data is not None else name, "r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise UserError(f"{name}: the file has no video stream")
            duration = _duration_s(stream, container, av)
            indices = sample_frame_indices(stream.frames or 0, duration, options.video_fps, options.video_maxlen)
            wanted, last = set(indices), max(indices)
            container.seek(0)
            frames = []
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames.append(frame.to_image())
                if index >= last:
                    break
    except av.error.FFmpegError as error:
        raise UserError(f"{name}: not a video PyAV can read ({error}); give an mp4, mkv, webm, avi or mov file") from None
    if not frames:
        raise UserError(f"{name}: no frame could be decoded")
    fps = len(indices) / duration if duration else options.video_fps
    pictures = [preprocess_image(f, options.video_max_pixels, options.video_min_pixels) for f in frames]
    return VideoClip(pictures, fps)


def _duration_s(stream: Any, container: Any, av: ModuleType) -> float | None:
    """Seconds of video: the stream's own duration (what the anchor reads), else the container's."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return None


# ---- audio ----------------------------------------------------------------------------------------------

_PCM = {1: ("u1", 128.0, 128.0), 2: ("<i2", 0.0, 32768.0), 4: ("<i4", 0.0, 2147483648.0)}


def _read_wav(source: Any, name: str) -> tuple[np.ndarray, int] | None:
    """Integer PCM WAV as float32 in [-1, 1) (torchaudio's scaling, which the anchor loads with), channels
    averaged to mono as the anchor does; None when the file is WAV but not integer PCM."""
    import wave

    try:
        with wave.open(source, "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except wave.Error:
        return None  # float or extensible WAV: the standard library reads integer PCM only
    except EOFError:
        raise UserError(f"{name}: the WAV file is truncated") from None
    if width == 3:  # 24-bit: sign-extend each 3-byte sample into 32 bits
        b = np.frombuffer(raw, dtype=np.uint8)[: len(raw) // 3 * 3].reshape(-1, 3).astype(np.int32)
        values = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        samples = values.astype(np.float32) / float(1 << 23)
    elif width in _PCM:
        dtype, offset, scale = _PCM[width]
        samples = (np.frombuffer(raw, dtype=dtype).astype(np.float32) - offset) / scale
    else:
        raise UserError(f"{name}: {8 * width}-bit WAV samples are not supported; save it as 16-bit PCM WAV")
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32), rate


def resample_linear(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`samples` at `rate` Hz re-read at `target` Hz by linear interpolation between neighbours: sample j
    is the waveform at time j / target (the last input sample held past the end). The output length is
    ceil(n * target / rate), torchaudio's; its band-limited filter (what the anchor uses) is not applied,
    so content above the lower rate's Nyquist frequency aliases when downsampling."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32)
    length = math.ceil(len(samples) * target / rate)
    positions = np.arange(length, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(len(samples), dtype=np.float64), samples).astype(np.float32)


def load_audio(ref: MediaRef, options: MediaOptions) -> np.ndarray:
    """A mono float32 waveform at audio_sampling_rate (the anchor's `_regularize_audios`: channels averaged,
    resampled). PCM WAV (8/16/24/32-bit) is read with the standard library and resampled by
    `resample_linear`; other formats need soundfile (`pip install soundfile`). `ref`: a path, a
    `data:audio/...;base64,...` URL, bytes, `{"path"/"bytes": ...}`, or a 1-D array already at
    audio_sampling_rate (kept as it is, as in the anchor)."""
    if isinstance(ref, np.ndarray):
        if ref.ndim != 1:
            raise UserError(f"audio array of shape {ref.shape}: give a 1-D (mono) array of samples at "
                            f"audio_sampling_rate ({options.audio_sampling_rate} Hz)")
        return ref.astype(np.float32)
    data, name = _bytes_or_path(ref, "audio")
    if data is not None:
        head = data[:12]
    else:
        with open(name, "rb") as file:
            head = file.read(12)
    decoded = None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        decoded = _read_wav(io.BytesIO(data) if data is not None else name, name)
    if decoded is None:
        soundfile = _optional("soundfile", f"reading {name} (only integer PCM WAV is read without it)")
        try:
            frames, rate = soundfile.read(io.BytesIO(data) if data is not None else name, dtype="float32",
                                          always_2d=True)  # fmt: skip
        except (RuntimeError, TypeError) as error:  # soundfile.LibsndfileError is a RuntimeError
            raise UserError(f"{name}: not audio soundfile can read ({error})") from None
        decoded = (frames.mean(axis=1).astype(np.float32), int(rate))
    samples, rate = decoded
    if len(samples) == 0:
        raise UserError(f"{name}: the audio has no samples")
    return resample_linear(samples, rate, options.audio_sampling_rate)

