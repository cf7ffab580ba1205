"""A training job's images: the zip or the list becomes stored images with their captions.

A zip (a ``data:`` URI, an upload's URL, another server's URL fetched under the SSRF guard)
is checked before anything of it is kept (``limner.media.archives``: entries, uncompressed
size, zip bombs), then each image in it is checked from its header like any input image and
stored once under its content hash in the caller's project, with the caption of its
``name.txt``. A list's images are checked and stored the same way. The job's input then holds
``[{url: storage://…, caption}]``: a worker never opens a zip or reaches the network.
"""

from __future__ import annotations

from limner.errors import LimitExceeded
from limner.intake.files import CheckedFile, check_image_input, read_input
from limner.media.archives import read_zip_images
from limner.media.types import IMAGE_TYPES
from limner.net.fetch import FetchPolicy
from limner.storage import Storage
from limner.storage.base import project_key, ref
from limner.tasks import Limits
from limner.tasks.training import LoraTrainingInput, TrainingImage
from limner.tenancy import Caller

FIELD = "images"


def store_training_images(
    parsed: LoraTrainingInput,
    limits: Limits,
    storage: Storage,
    base: str,
    caller: Caller,
    policy: FetchPolicy | None,
) -> LoraTrainingInput:
    images = parsed.images
    stored: list[TrainingImage] = []
    if isinstance(images, str):
        data = read_input(images, FIELD, storage, base, limits.max_archive_bytes, policy, caller)
        if len(data) > limits.max_archive_bytes:
            raise LimitExceeded(
                f"{FIELD} is {len(data)} bytes, over this model's limit of {limits.max_archive_bytes} "
                "(limits.max_archive_bytes)",
                loc=("body", FIELD),
            )
        for item in read_zip_images(
            data,
            FIELD,
            max_images=limits.max_images,
            max_archive_bytes=limits.max_archive_bytes,
            max_image_bytes=limits.max_input_bytes,
            max_pixels=limits.max_input_pixels,
        ):
            checked = item.image
            kept = CheckedFile(checked.data, checked.extension, IMAGE_TYPES[checked.extension])
            stored.append(TrainingImage(url=_put(kept, storage, caller), caption=item.caption))
    else:
        for index, entry in enumerate(images):
            name = f"{FIELD}.{index}"
            url, caption = (entry, None) if isinstance(entry, str) else (entry.url, entry.caption)
            data = read_input(url, name, storage, base, limits.max_input_bytes, policy, caller)
            stored.append(
                TrainingImage(url=_put(check_image_input(data, name, limits), storage, caller), caption=caption)
            )
    return parsed.model_copy(update={"images": stored})


def _put(checked: CheckedFile, storage: Storage, caller: Caller) -> str:
    key = project_key(caller.project, f"inputs/{checked.digest}.{checked.extension}")
    if not storage.exists(key):
        storage.put(key, checked.data, checked.content_type)
    return ref(key)
