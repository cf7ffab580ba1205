"""Videos out: frames to an H.264 MP4, with properties measured from the file itself.

Encoding goes through PyAV (FFmpeg's libraries): H.264 in yuv420p, the profile every browser
and phone plays, with the moov atom up front (``+faststart``) so playback can start before the
download ends. One frame per time-base tick (time base = 1/fps) gives exactly the requested
frame count and rate. The reported width, height, frames, fps and duration are read back by
decoding the bytes just written, so a result never claims what the file does not hold.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from limner.errors import ModelUnavailable
from limner.media.images import MediaFile, encode_image

# Constant-quality H.264: 18 is visually lossless for generated content at modest file sizes.
# (x264 output is byte-for-byte repeatable from 128 px up; at toy sizes such as 64x64 its
# lookahead may differ run to run, so the tiny models' files can differ in a few pixels.)
X264_OPTIONS = {"crf": "18"}


def _av() -> Any:
    """PyAV, imported on first use: it is the optional `video` extra (its FFmpeg build is GPL)."""
    try:
        import av
    except ImportError:
        raise ModelUnavailable(
            "MP4 encoding needs PyAV: pip install 'limner[video]' (its FFmpeg build includes GPL x264)"
        ) from None
    return av


def to_uint8_frames(frames: Sequence[Any] | np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Frames as (count, height, width, 3) uint8: from PIL images, or arrays in [0, 1] or 0-255."""
    if len(frames) == 0:
        raise ValueError("a video needs at least one frame")
    if isinstance(frames[0], Image.Image):
        return np.stack([np.asarray(f.convert("RGB"), dtype=np.uint8) for f in frames])
    array = np.ascontiguousarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected frames shaped (count, height, width, 3), got {array.shape}")
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return array


def encode_video(frames: Sequence[Any] | np.ndarray[Any, Any], fps: int) -> MediaFile:
    """Encode frames (PIL images or arrays) as an MP4 at ``fps`` frames per second."""
    pixels = to_uint8_frames(frames)
    height, width = pixels.shape[1:3]
    if width % 2 or height % 2:
        raise ValueError(f"H.264 in yuv420p needs even sizes, got {width}x{height}")
    # A real file, not a BytesIO: +faststart rewrites the file by name in a second pass.
    with tempfile.TemporaryDirectory(prefix="limner-video-") as folder:
        path = Path(folder) / "video.mp4"
        _write(pixels, fps, path)
        data = path.read_bytes()
    return MediaFile(data=data, content_type="video/mp4", extension="mp4", properties=probe_video(data))


def _write(pixels: np.ndarray[Any, np.dtype[np.uint8]], fps: int, path: Path) -> None:
    count, height, width, _ = pixels.shape
    av = _av()
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1), options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(pixels[index], format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def probe_video(data: bytes) -> dict[str, Any]:
    """Width, height, frame count, frame rate and duration, by decoding every frame of ``data``."""
    av = _av()
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = frames / fps if fps else 0.0
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "fps": round(fps, 3),
            "duration_s": round(duration, 3),
            "codec": stream.codec_context.name,
        }


def poster(frames: Sequence[Any] | np.ndarray[Any, Any]) -> MediaFile:
    """The first frame as a PNG: what a player shows before playback starts."""
    first = to_uint8_frames(frames[:1])[0]
    return encode_image(Image.fromarray(first, "RGB"), "png")
