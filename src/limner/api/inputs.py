"""File inputs (images, masks, audio): checked and stored before the job is queued.

A file arrives as a ``data:`` URI, or as a URL of a file this server already holds (an upload
or an earlier result). It is checked from its header (bytes, format, pixel count or duration:
a decompression bomb is refused before decoding), stored once under its content hash, and the
job's input refers to the stored copy, so a queued job never holds megabytes of base64.
"""

from __future__ import annotations

from urllib.parse import urlparse

from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput
from limner.media.audio import check_audio
from limner.media.images import CONTENT_TYPES, check_image, decode_data_uri
from limner.storage import Storage
from limner.storage.base import check_key, ref
from limner.tasks import TaskInput

FILES_PATH = "/v1/files/"


def store_file_inputs(parsed: TaskInput, entry: CatalogEntry, storage: Storage, base: str) -> TaskInput:
    """Replace each file field with a reference to its stored copy; derive the output size
    of image-to-image and inpainting from the input image when the request gave none."""
    if not parsed.file_fields:
        return parsed
    updates: dict[str, object] = {}
    image_size: tuple[int, int] | None = None
    limits = entry.limits
    for name, kind in sorted(parsed.file_fields.items()):
        value = getattr(parsed, name)
        if value is None:
            continue
        data = _read(value, name, storage, base, limits.max_input_bytes)
        if kind == "audio":
            audio = check_audio(data, name, max_bytes=limits.max_input_bytes, max_duration_s=limits.max_input_audio_s)
            key = f"inputs/{audio.digest}.{audio.extension}"
            if not storage.exists(key):
                storage.put(key, audio.data, audio.content_type)
            updates[name] = ref(key)
            continue
        if kind not in ("image", "mask"):
            raise InvalidInput(f"{name}: files of kind {kind!r} are not accepted yet", loc=("body", name))
        checked = check_image(data, name, max_bytes=limits.max_input_bytes, max_pixels=limits.max_input_pixels)
        key = f"inputs/{checked.digest}.{checked.extension}"
        if not storage.exists(key):
            storage.put(key, checked.data, CONTENT_TYPES[checked.extension])
        updates[name] = ref(key)
        if name == "image":
            image_size = (checked.width, checked.height)
    if image_size is not None:
        multiple = limits.size_multiple
        for field, measured in (("width", image_size[0]), ("height", image_size[1])):
            if getattr(parsed, field, 0) is None:
                updates[field] = max(multiple, measured // multiple * multiple)
    return parsed.model_copy(update=updates)


def _read(value: str, name: str, storage: Storage, base: str, max_bytes: int) -> bytes:
    if value.startswith("data:"):
        return decode_data_uri(value, name, max_bytes)
    key = own_file_key(value, base)
    if key is None:
        raise InvalidInput(
            f"{name} must be a data: URI or a URL of a file on this server ({base}{FILES_PATH}…)",
            loc=("body", name),
        )
    if not storage.exists(key):
        raise InvalidInput(f"{name} refers to {value}, which this server does not hold", loc=("body", name))
    return storage.get(key)


def own_file_key(url: str, base: str) -> str | None:
    """The storage key of a URL that points at this server's /v1/files/, else None."""
    parsed, own = urlparse(url), urlparse(base)
    if parsed.scheme not in ("http", "https") or parsed.netloc != own.netloc:
        return None
    prefix = own.path.rstrip("/") + FILES_PATH
    if not parsed.path.startswith(prefix):
        return None
    try:
        return check_key(parsed.path[len(prefix) :])
    except InvalidInput:
        return None
