"""The LoRAs an image request names (``loras: [{path, scale}]``), resolved before it is queued.

``path`` is a registered LoRA id of the caller's project (``lora_…``), a URL of this server's
own files, or an http(s) URL of another server, fetched under the SSRF guard (a private or
loopback address is refused unless an operator allows it). Anything else is refused: limner
never takes a local path (or ``file://``) from a request. The file must be safetensors
holding LoRA weights; a pickle is refused with a 422 that says why. A fetched file is stored
once under its content hash in the caller's project. Each entry then carries what it resolved
to (``sha256``, ``file``, and a registered LoRA's ``revision``): the worker loads exactly that
file, the result records it, and the exact-cache key changes with it.
"""

from __future__ import annotations

import hashlib
import re

from limner.errors import InvalidInput, LimitExceeded
from limner.intake.files import read_input
from limner.media.safetensors_check import check_lora_file
from limner.media.types import WEIGHT_TYPES
from limner.net.fetch import FetchPolicy
from limner.storage import Storage
from limner.storage.base import REF_PREFIX, project_key, ref
from limner.store.loras import LoraStore
from limner.tasks import Limits
from limner.tasks.image import LORA_ID_PATTERN, LoraWeight
from limner.tenancy import Caller

LORA_ID = re.compile(LORA_ID_PATTERN)
SERVER_FIELDS = ("sha256", "file", "revision")


def resolve_loras(
    loras: list[LoraWeight],
    limits: Limits,
    storage: Storage,
    base: str,
    caller: Caller,
    policy: FetchPolicy | None,
    registry: LoraStore | None,
) -> list[LoraWeight]:
    out = []
    for index, weight in enumerate(loras):
        try:
            out.append(resolve_lora(weight, f"loras.{index}", limits, storage, base, caller, policy, registry))
        except InvalidInput as exc:  # every refusal names the entry: body.loras.<index>.<field>
            field = exc.loc[-1] if exc.loc and exc.loc[-1] in (*SERVER_FIELDS, "path") else "path"
            raise type(exc)(exc.message, loc=("body", "loras", index, field)) from None
    return out


def resolve_lora(
    weight: LoraWeight,
    where: str,
    limits: Limits,
    storage: Storage,
    base: str,
    caller: Caller,
    policy: FetchPolicy | None,
    registry: LoraStore | None,
) -> LoraWeight:
    field = f"{where}.path"
    for name in SERVER_FIELDS:
        if getattr(weight, name) is not None:
            raise InvalidInput(
                f"{where}.{name} is set by the server; send only path and scale", loc=("body", where, name)
            )
    path = weight.path.strip()
    if LORA_ID.fullmatch(path):
        return _registered(weight, path, field, caller, registry)
    if not (path.startswith(("http://", "https://")) or path.startswith(REF_PREFIX)):
        raise InvalidInput(
            f"{field} must be a registered LoRA id (lora_…, see GET /v1/loras) or an http(s) URL of a .safetensors "
            f"file; limner never takes a local path from a request (got {path[:80]!r})",
            loc=("body", *field.split(".")),
        )
    data = read_input(path, field, storage, base, limits.max_lora_bytes, policy, caller)
    if len(data) > limits.max_lora_bytes:
        raise LimitExceeded(
            f"{field} is {len(data)} bytes, over this model's limit of {limits.max_lora_bytes} (limits.max_lora_bytes)",
            loc=("body", *field.split(".")),
        )
    try:
        check_lora_file(data, field)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, loc=("body", *field.split("."))) from None
    digest = hashlib.sha256(data).hexdigest()
    key = project_key(caller.project, f"inputs/{digest}.safetensors")
    if not storage.exists(key):
        storage.put(key, data, WEIGHT_TYPES["safetensors"])
    return weight.model_copy(update={"path": path, "sha256": digest, "file": ref(key)})


def _registered(weight: LoraWeight, lora_id: str, field: str, caller: Caller, registry: LoraStore | None) -> LoraWeight:
    found = registry.get(lora_id) if registry is not None else None
    if found is None or not caller.sees_project(found.project):
        raise InvalidInput(
            f"{field}: there is no LoRA {lora_id} (GET /v1/loras lists yours)", loc=("body", *field.split("."))
        )
    return weight.model_copy(
        update={"path": lora_id, "sha256": found.sha256, "file": ref(found.file_key), "revision": found.revision}
    )
