"""File inputs (images, masks, audio): checked and stored before the job is queued.

A file arrives as a ``data:`` URI, as a URL of a file this server already holds (an upload to
``POST /v1/files`` or an earlier result), or as another http(s) URL, which the API fetches
under the SSRF guard (``limner.net``). It is checked from its header by its kind (bytes,
format, pixel count or duration: a decompression bomb is refused before decoding), stored once under its
content hash, and the job's input refers to the stored copy, so a queued job never holds
megabytes of base64 and a worker never reaches out to the network for an input.

Stored inputs live in the caller's project folder, and a URL of this server's own files is
taken only when the caller may see that file (its project, or any for an admin): another
project's file is refused exactly like a file the server does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import ParseResult, urlparse

from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, LimitExceeded
from limner.media.archives import read_zip_images
from limner.media.audio import check_audio
from limner.media.images import check_image, decode_data_uri
from limner.media.types import IMAGE_TYPES as CONTENT_TYPES
from limner.net.fetch import FetchFailed, FetchPolicy, TooLarge
from limner.net.guard import Refused
from limner.storage import Storage
from limner.storage.base import REF_PREFIX, check_key, key_of, project_key, ref
from limner.tasks import Limits, TaskInput
from limner.tenancy import Caller

FILES_PATH = "/v1/files/"


@dataclass(frozen=True)
class CheckedFile:
    """An input file that passed its kind's checks, ready to store."""

    data: bytes
    extension: str
    content_type: str
    size: tuple[int, int] | None = None  # (width, height) of an image

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_image_input(data: bytes, name: str, limits: Limits) -> CheckedFile:
    checked = check_image(data, name, max_bytes=limits.max_input_bytes, max_pixels=limits.max_input_pixels)
    return CheckedFile(
        checked.data, checked.extension, CONTENT_TYPES[checked.extension], (checked.width, checked.height)
    )


def check_audio_input(data: bytes, name: str, limits: Limits) -> CheckedFile:
    checked = check_audio(data, name, max_bytes=limits.max_input_bytes, max_duration_s=limits.max_input_audio_s)
    return CheckedFile(checked.data, checked.extension, checked.content_type)


def check_archive_input(data: bytes, name: str, limits: Limits) -> CheckedFile:
    """A zip of images: entries, uncompressed size, zip bombs and each image's header, before
    the zip is stored (limner.media.archives)."""
    if len(data) > limits.max_archive_bytes:
        raise LimitExceeded(
            f"{name} is {len(data)} bytes, over this model's limit of {limits.max_archive_bytes} "
            "(limits.max_archive_bytes)",
            loc=("body", name),
        )
    read_zip_images(
        data,
        name,
        max_images=limits.max_images,
        max_archive_bytes=limits.max_archive_bytes,
        max_image_bytes=limits.max_input_bytes,
        max_pixels=limits.max_input_pixels,
    )
    return CheckedFile(data, "zip", "application/zip")


# The check of each file kind a task schema names in ``file_fields``.
CHECKS: dict[str, Callable[[bytes, str, Limits], CheckedFile]] = {
    "image": check_image_input,
    "mask": check_image_input,
    "audio": check_audio_input,
    "archive": check_archive_input,
}


def store_file_inputs(
    parsed: TaskInput,
    entry: CatalogEntry | Limits,
    storage: Storage,
    base: str,
    caller: Caller,
    *,
    policy: FetchPolicy | None = None,
) -> TaskInput:
    """Replace each file field with a reference to its stored copy; derive the output size
    of image-to-image and inpainting from the input image when the request gave none.

    ``policy`` allows fetching URLs of other servers; without it only data: URIs and this
    server's own files are taken."""
    if not parsed.file_fields:
        return parsed
    updates: dict[str, object] = {}
    image_size: tuple[int, int] | None = None
    limits = entry.limits if isinstance(entry, CatalogEntry) else entry
    for name, kind in sorted(parsed.file_fields.items()):
        value = getattr(parsed, name)
        if value is None:
            continue
        check = CHECKS.get(kind)
        if check is None:
            raise InvalidInput(f"{name}: files of kind {kind!r} are not accepted yet", loc=("body", name))
        data = read_input(value, name, storage, base, limits.max_input_bytes, policy, caller)
        checked = check(data, name, limits)
        # Every input is kept under its content hash, in the caller's project, even another
        # workflow step's result: a step whose input came from a cache hit (an earlier job's
        # file, the same bytes) then has the same input, and so the same cache key.
        stored = project_key(caller.project, f"inputs/{checked.digest}.{checked.extension}")
        if not storage.exists(stored):
            storage.put(stored, checked.data, checked.content_type)
        updates[name] = ref(stored)
        if name == "image":
            image_size = checked.size
    if image_size is not None:
        multiple = limits.size_multiple
        for field, measured in (("width", image_size[0]), ("height", image_size[1])):
            if getattr(parsed, field, 0) is None:
                updates[field] = max(multiple, measured // multiple * multiple)
    return parsed.model_copy(update=updates)


def read_input(
    value: str, name: str, storage: Storage, base: str, max_bytes: int, policy: FetchPolicy | None, caller: Caller
) -> bytes:
    """The bytes of a file field: decoded, read from this server's storage, or fetched. A
    ``storage://`` reference (a workflow step's input made from another step's result) is
    read like a URL of this server's own files."""
    if value.startswith("data:"):
        return decode_data_uri(value, name, max_bytes)
    key = key_of(value) if value.startswith(REF_PREFIX) else own_file_key(value, base) or storage.key_for_url(value)
    if key is not None:
        if not caller.sees_file(key) or not storage.exists(key):
            raise InvalidInput(f"{name} refers to {value}, which this server does not hold", loc=("body", name))
        return storage.get(key)
    if policy is None or "://" not in value:
        raise InvalidInput(
            f"{name} must be a data: URI or an http(s) URL (of this server's {base}{FILES_PATH}…"
            f"{' or another server' if policy else ''})",
            loc=("body", name),
        )
    try:
        return policy.fetch(value, max_bytes).data
    except TooLarge as exc:
        raise LimitExceeded(
            f"{name}: {exc}, over this model's limit of {max_bytes} bytes (limits.max_input_bytes)", loc=("body", name)
        ) from None
    except (Refused, FetchFailed) as exc:
        raise InvalidInput(f"{name}: {exc}", loc=("body", name)) from None


def own_file_key(url: str, base: str) -> str | None:
    """The storage key of a URL that points at this server's /v1/files/, else None."""
    parsed, own = urlparse(url), urlparse(base)
    if parsed.scheme not in ("http", "https") or not _same_server(parsed, own):
        return None
    prefix = own.path.rstrip("/") + FILES_PATH
    if not parsed.path.startswith(prefix):
        return None
    try:
        return check_key(parsed.path[len(prefix) :])
    except InvalidInput:
        return None


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _same_server(a: ParseResult, b: ParseResult) -> bool:
    """Same host and port; the loopback names count as one host (a client on this machine
    may say localhost where the server sees 127.0.0.1)."""
    if a.netloc == b.netloc:
        return True
    if (a.port or _default_port(a.scheme)) != (b.port or _default_port(b.scheme)):
        return False
    return (a.hostname or "") in LOOPBACK_NAMES and (b.hostname or "") in LOOPBACK_NAMES


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
