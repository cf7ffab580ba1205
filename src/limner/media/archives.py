"""Zips of training images: checked before anything is stored or decoded.

A zip can claim little and expand a lot (a zip bomb), overlap its entries so one compressed
block expands many times, hold thousands of entries, or name paths outside any folder. The
central directory is read first and the archive refused (422, naming the limit) when it holds
more entries than a training could use, when its declared uncompressed size or any entry's
compression ratio is over the limit, when entries overlap, or when an entry is encrypted.
Only then are the image entries read, each bounded by its declared size (``zipfile`` never
reads past it), and checked from their headers like any input image.

Captions follow the convention of DreamBooth data folders (and fal's trainers): ``name.txt``
beside ``name.png`` holds that image's caption.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from limner.errors import InvalidInput, LimitExceeded
from limner.media.images import CheckedImage, check_image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
CAPTION_SUFFIX = ".txt"
# Beyond its images and their captions, a zip may carry a few other files (a README, a
# macOS resource fork folder): this many entries per image allowed, plus a few.
ENTRIES_PER_IMAGE = 3
SPARE_ENTRIES = 16
# Image files barely compress; text does, but captions are small. A higher ratio is a bomb.
MAX_RATIO = 100
MAX_CAPTION_BYTES = 8192
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip entry's local file header (30 bytes)


@dataclass(frozen=True)
class ArchiveImage:
    name: str
    image: CheckedImage
    caption: str | None


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _skipped(name: str) -> bool:
    path = PurePosixPath(name)
    return name.endswith("/") or any(part.startswith(".") or part == "__MACOSX" for part in path.parts)


def _check_entries(infos: list[zipfile.ZipInfo], data_size: int, field: str, max_images: int, max_bytes: int) -> None:
    most = max_images * ENTRIES_PER_IMAGE + SPARE_ENTRIES
    if len(infos) > most:
        raise LimitExceeded(
            f"{field}: the zip holds {len(infos)} entries, more than {most} for this model's limit of "
            f"{max_images} images (limits.max_images)",
            loc=("body", field),
        )
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise LimitExceeded(
            f"{field}: the zip expands to {total} bytes, over this model's limit of {max_bytes} "
            "(limits.max_archive_bytes)",
            loc=("body", field),
        )
    for info in infos:
        name = info.filename
        if name.startswith("/") or ".." in PurePosixPath(name).parts or "\\" in name:
            raise InvalidInput(f"{field}: the zip names a path outside its folder: {name!r}", loc=("body", field))
        if info.flag_bits & 0x1:
            raise InvalidInput(f"{field}: {name!r} is encrypted; send an unencrypted zip", loc=("body", field))
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1024:
            raise LimitExceeded(
                f"{field}: {name!r} expands {info.file_size // max(info.compress_size, 1)}x, more than {MAX_RATIO}x "
                "(a zip bomb); refused before decompressing",
                loc=("body", field),
            )


def _check_overlap(infos: list[zipfile.ZipInfo], data: bytes, field: str) -> None:
    """Each entry's bytes (local header, name, extra, data) must end before the next begins:
    overlapping entries are how a small zip expands one block many times."""
    spans = sorted(infos, key=lambda i: i.header_offset)
    for current, following in zip(spans, [*spans[1:], None], strict=True):
        start = current.header_offset
        header = data[start : start + LOCAL_HEADER.size]
        if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise InvalidInput(f"{field}: the zip's entry {current.filename!r} is damaged", loc=("body", field))
        fields = LOCAL_HEADER.unpack(header)
        end = start + LOCAL_HEADER.size + fields[9] + fields[10] + current.compress_size
        limit = following.header_offset if following is not None else len(data)
        if end > limit:
            raise InvalidInput(
                f"{field}: the zip's entries overlap (a zip bomb); refused before decompressing", loc=("body", field)
            )


def read_zip_images(
    data: bytes, field: str, *, max_images: int, max_archive_bytes: int, max_image_bytes: int, max_pixels: int
) -> list[ArchiveImage]:
    """The zip's images, in name order, each checked, with its caption (``name.txt``) if any."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidInput(f"{field} is not a readable zip: {exc}", loc=("body", field)) from None
    with archive:
        infos = archive.infolist()
        _check_entries(infos, len(data), field, max_images, max_archive_bytes)
        _check_overlap(infos, data, field)
        kept = [i for i in infos if not _skipped(i.filename)]
        by_name = {i.filename: i for i in kept}
        images = sorted(
            (i for i in kept if PurePosixPath(i.filename).suffix.lower() in IMAGE_SUFFIXES), key=lambda i: i.filename
        )
        if not images:
            raise InvalidInput(f"{field}: the zip holds no PNG, JPEG or WebP image", loc=("body", field))
        if len(images) > max_images:
            raise LimitExceeded(
                f"{field}: the zip holds {len(images)} images, over this model's limit of {max_images} "
                "(limits.max_images)",
                loc=("body", field),
            )
        out: list[ArchiveImage] = []
        for info in images:
            name = f"{field}/{info.filename}"
            if info.file_size > max_image_bytes:
                raise LimitExceeded(
                    f"{name} is {info.file_size} bytes, over this model's limit of {max_image_bytes} "
                    "(limits.max_input_bytes)",
                    loc=("body", field),
                )
            try:
                raw = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InvalidInput(f"{name} cannot be read from the zip: {exc}", loc=("body", field)) from None
            checked = check_image(raw, name, max_bytes=max_image_bytes, max_pixels=max_pixels)
            out.append(ArchiveImage(info.filename, checked, _caption(archive, by_name, info.filename, field)))
        return out


def _caption(archive: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], image: str, field: str) -> str | None:
    stem = str(PurePosixPath(image).with_suffix(""))
    info = by_name.get(stem + CAPTION_SUFFIX) or by_name.get(stem + CAPTION_SUFFIX.upper())
    if info is None:
        return None
    if info.file_size > MAX_CAPTION_BYTES:
        raise LimitExceeded(
            f"{field}/{info.filename}: a caption of {info.file_size} bytes, over {MAX_CAPTION_BYTES}",
            loc=("body", field),
        )
    try:
        text = archive.read(info).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput(f"{field}/{info.filename} is not UTF-8 text", loc=("body", field)) from None
    return text[:2000] or None
