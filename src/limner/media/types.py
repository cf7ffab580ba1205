"""Content types of the files limner reads and writes, by extension: one table for every
media module and for the files route (so a served file says what its result says)."""

from __future__ import annotations

import mimetypes
from typing import Final

IMAGE_TYPES: Final = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
AUDIO_TYPES: Final = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg"}
VIDEO_TYPES: Final = {"mp4": "video/mp4"}
MESH_TYPES: Final = {"glb": "model/gltf-binary", "ply": "model/ply"}
ARCHIVE_TYPES: Final = {"zip": "application/zip"}
# LoRA weights (training results and the files LoRA requests name).
WEIGHT_TYPES: Final = {"safetensors": "application/vnd.safetensors"}
CONTENT_TYPES: Final = {
    **IMAGE_TYPES,
    **AUDIO_TYPES,
    **VIDEO_TYPES,
    **MESH_TYPES,
    **ARCHIVE_TYPES,
    **WEIGHT_TYPES,
    "jpg": "image/jpeg",
}


def content_type_for(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"
