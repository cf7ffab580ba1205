"""``POST /v1/images/generations`` and ``POST /v1/images/edits``, as OpenAI's Images API.

- ``model``: a limner model id or an alias (``LIMNER_MODEL_ALIASES``). Generations need a
  text-to-image model. Edits need an image-to-image model, or an inpainting model when a
  ``mask`` is sent; the route never swaps one model for another.
- ``n`` -> ``num_outputs``; ``size`` ``"WxH"`` -> ``width``/``height`` (``auto``: the
  model's default); ``output_format`` png, webp or jpeg.
- ``response_format``: ``url`` (the default: a /v1/files URL, signed while API keys are on,
  or a presigned S3 URL) or ``b64_json``.
- ``quality`` ``auto``/``standard``, ``style`` unset, ``background`` ``auto``/``opaque`` and
  ``moderation`` are accepted (limner does not moderate); any other quality, style or
  background, streaming, partial images and compression are refused with a 400 naming them.
- Any other field of the task's schema (``seed``, ``negative_prompt``, ``num_inference_steps``,
  ``guidance_scale``, ``strength`` …) may ride along (the openai package's ``extra_body``).
- An edit's mask is read as OpenAI's: fully transparent pixels are repainted. A mask without
  an alpha channel is read as limner's: white is repainted.
"""

from __future__ import annotations

import base64
import io
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from limner.api.context import ApiContext, get_ctx
from limner.api.openai.common import output_keys, resolve_model, run_job
from limner.errors import InvalidInput
from limner.store.records import Job

router = APIRouter(tags=["openai"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
ACCEPTED = {"quality": {"auto", "standard"}, "background": {"auto", "opaque"}, "style": set()}
REFUSED_UNLESS_EMPTY = ("partial_images", "output_compression", "stream")
# OpenAI fields with no limner counterpart that change nothing about the image.
IGNORED = ("user", "safety_identifier", "moderation", "input_fidelity")


class ImageGenerationRequest(BaseModel):
    """OpenAI's image generation request; other fields of the model's task schema may be added."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(description="What to draw.")
    model: str | None = Field(default=None, description="A limner text-to-image model id, or an alias.")
    n: int | None = Field(default=None, ge=1, le=64, description="Images to make (num_outputs).")
    size: str | None = Field(default=None, description='"WIDTHxHEIGHT", or "auto" for the model\'s default.')
    response_format: Literal["url", "b64_json"] | None = Field(default=None, description="url (default) or b64_json.")
    output_format: str | None = Field(default=None, description="png, webp or jpeg.")
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    stream: bool | None = None
    partial_images: int | None = None
    output_compression: int | None = None
    user: str | None = None


def parse_size(size: str | None) -> dict[str, int]:
    if size is None or size == "auto":
        return {}
    match = SIZE.match(size.strip())
    if not match:
        raise InvalidInput(f'size={size!r} must read "WIDTHxHEIGHT" (e.g. "512x512") or "auto"', loc=("body", "size"))
    return {"width": int(match.group(1)), "height": int(match.group(2))}


def check_options(fields: dict[str, Any]) -> None:
    """Refuse, by name, what limner cannot honour; the rest of OpenAI's options are accepted."""
    for name, allowed in ACCEPTED.items():
        value = fields.get(name)
        if value is not None and value not in allowed:
            choices = ", ".join(sorted(allowed)) or "none (leave it unset)"
            raise InvalidInput(
                f"{name}={value!r} is not supported by limner's image models; accepted: {choices}",
                loc=("body", name),
            )
    for name in REFUSED_UNLESS_EMPTY:
        if fields.get(name):
            raise InvalidInput(f"{name} is not supported: limner answers with finished images", loc=("body", name))
    fmt = fields.get("output_format")
    if fmt is not None and fmt not in ("png", "webp", "jpeg"):
        raise InvalidInput(f"output_format={fmt!r} must be png, webp or jpeg", loc=("body", "output_format"))


def task_input(fields: dict[str, Any]) -> dict[str, Any]:
    """The limner input of an OpenAI request: mapped fields plus the extra ones as they are."""
    known = set(ImageGenerationRequest.model_fields) | set(IGNORED) | {"image", "mask"}
    body: dict[str, Any] = {k: v for k, v in fields.items() if k not in known and v is not None}
    body["prompt"] = fields["prompt"]
    if fields.get("n") is not None:
        body["num_outputs"] = int(fields["n"])
    if fields.get("output_format") is not None:
        body["output_format"] = fields["output_format"]
    body.update(parse_size(fields.get("size")))
    return body


async def images_response(ctx: ApiContext, request: Request, job: Job, response_format: str | None) -> JSONResponse:
    data: list[dict[str, Any]] = []
    files = output_keys(job, "images")
    for key, _item in files:
        if response_format == "b64_json":
            raw = await run_in_threadpool(ctx.storage.get, key)
            data.append({"b64_json": base64.b64encode(raw).decode()})
        else:
            data.append({"url": ctx.storage.url(key, ctx.base_url(request))})
    first = files[0][1] if files else {}
    body: dict[str, Any] = {"created": int(job.finished_at or time.time()), "data": data}
    if first:
        body["size"] = f"{first.get('width')}x{first.get('height')}"
        body["output_format"] = str(first.get("content_type", "image/png")).split("/")[-1]
    return JSONResponse(content=body, headers={"X-Limner-Request-Id": job.id})


@router.post("/v1/images/generations")
async def generations(body: ImageGenerationRequest, request: Request, ctx: Ctx) -> JSONResponse:
    """Text to image, answered as OpenAI's Images API does."""
    fields = body.model_dump()
    check_options(fields)
    entry = resolve_model(ctx, body.model, ("text-to-image",))
    job = await run_job(ctx, request, entry, task_input(fields))
    return await images_response(ctx, request, job, body.response_format)


EDIT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "mask": {"type": "string", "format": "binary"},
                        "prompt": {"type": "string"},
                        "model": {"type": "string", "description": "An image-to-image or inpainting model (or alias)."},
                        "n": {"type": "integer"},
                        "size": {"type": "string"},
                        "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                    },
                }
            }
        },
    }
}


def data_uri(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def limner_mask(data: bytes) -> bytes:
    """OpenAI's mask (transparent = edit) as limner's (white = repaint); one with no alpha
    channel is taken as limner's already."""
    try:
        image = Image.open(io.BytesIO(data))
        if "A" not in image.getbands() and not (image.mode == "P" and "transparency" in image.info):
            return data
        alpha = image.convert("RGBA").getchannel("A")
    except Exception as exc:
        raise InvalidInput(f"mask is not an image this server reads: {exc}", loc=("body", "mask")) from None
    out = io.BytesIO()
    alpha.point(lambda a: 255 if a == 0 else 0).convert("L").save(out, format="PNG")
    return out.getvalue()


async def read_edit_form(request: Request, max_bytes: int) -> tuple[dict[str, Any], list[bytes], bytes | None]:
    """(text fields, image files, mask file) of an edit's multipart form."""
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    async with request.form(max_files=20, max_fields=64, max_part_size=max_bytes) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if name in ("image", "image[]"):
                    images.append(data)
                elif name == "mask":
                    mask = data
                else:
                    raise InvalidInput(f"{name}: only image and mask may be files", loc=("body", name))
            else:
                fields[name] = value
    return fields, images, mask


@router.post("/v1/images/edits", openapi_extra=EDIT_DOC)
async def edits(request: Request, ctx: Ctx) -> JSONResponse:
    """Image to image (no mask) or inpainting (with a mask), answered as OpenAI's Images API does."""
    fields, images, mask = await read_edit_form(request, ctx.settings.max_body_bytes)
    if not fields.get("prompt"):
        raise InvalidInput("prompt is required", loc=("body", "prompt"))
    if len(images) != 1:
        raise InvalidInput(f"send exactly one image (got {len(images)})", loc=("body", "image"))
    for name in ("n", "partial_images", "output_compression"):
        if fields.get(name) not in (None, ""):
            try:
                fields[name] = int(fields[name])
            except ValueError:
                raise InvalidInput(f"{name} must be an integer", loc=("body", name)) from None
    if str(fields.get("stream", "")).lower() in ("true", "1"):
        fields["stream"] = True
    else:
        fields.pop("stream", None)
    check_options(fields)
    task = "inpainting" if mask is not None else "image-to-image"
    entry = resolve_model(ctx, fields.get("model"), (task,), param="model")
    body = task_input(fields)
    body["image"] = data_uri(images[0])
    if mask is not None:
        body["mask_image"] = data_uri(await run_in_threadpool(limner_mask, mask))
    job = await run_job(ctx, request, entry, body)
    return await images_response(ctx, request, job, fields.get("response_format"))
