"""Training images for ``lora-training`` models, the way a person has them: a folder (images
with ``name.txt`` captions beside them), a zip, or a list of image files.

A folder is zipped in memory (images and their captions only) and uploaded once; the
training job's ``images`` is then the upload's URL. Nothing here imports torch.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def zip_folder(folder: Path) -> bytes:
    """The folder's images and their ``.txt`` captions, as a zip (stored, not compressed:
    images do not shrink, and the server checks compression ratios)."""
    buffer = io.BytesIO()
    names = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"{folder} holds no PNG, JPEG or WebP image")
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for image in names:
            archive.write(image, image.name)
            caption = image.with_suffix(".txt")
            if caption.is_file():
                archive.write(caption, caption.name)
    return buffer.getvalue()


def training_archive(images: str | Path | Sequence[str | Path]) -> bytes | None:
    """The zip to upload for ``images`` (a folder, a zip file, or image files), or None when
    ``images`` is already a URL the server can take."""
    if isinstance(images, str) and images.startswith(("http://", "https://", "data:")):
        return None
    if isinstance(images, (str, Path)):
        path = Path(images).expanduser()
        if path.is_dir():
            return zip_folder(path)
        if path.is_file() and path.suffix.lower() == ".zip":
            return path.read_bytes()
        raise ValueError(f"{path} is neither a folder of images nor a .zip file")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for item in images:
            path = Path(item).expanduser()
            archive.write(path, path.name)
            if path.with_suffix(".txt").is_file():
                archive.write(path.with_suffix(".txt"), path.with_suffix(".txt").name)
    return buffer.getvalue()
