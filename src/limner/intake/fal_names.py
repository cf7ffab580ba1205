"""fal's input field names, both ways: what fal's own clients send to limner's queue routes, and
what limner's ``fal-queue`` family sends to fal.

fal's models share a handful of names that differ from limner's: ``image_size`` (a preset such
as ``landscape_4_3``, or ``{width, height}``) for ``width``/``height``, ``num_images`` for
``num_outputs``, and ``…_url`` for input files (``image_url``, ``mask_url``,
``control_image_url``, ``audio_url``). A body written for fal (fal-client's examples, a
product that ran on fal) then works on limner unchanged, and a catalog entry with
``runtime.input_names: fal`` sends fal's names to the provider. Every other field goes as it is.

Both forms of one field in a body (``num_images`` and ``num_outputs``) are a 422 naming both:
limner does not guess which was meant. No library holds this table (fal publishes one schema
per model), so it is kept here, short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from limner.errors import InvalidInput

# fal's size presets (its text-to-image models' ``image_size`` enum).
SIZE_PRESETS: Mapping[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
# fal's name -> limner's name.
RENAMES: Mapping[str, str] = {
    "num_images": "num_outputs",
    "image_url": "image",
    "mask_url": "mask_image",
    "control_image_url": "control_image",
    "audio_url": "melody",
}


def from_fal(body: Any, fields: frozenset[str]) -> Any:
    """``body`` with fal's names turned into limner's, for a task whose schema has ``fields``.
    A name is turned only when the task has the limner field and not the fal one."""
    if not isinstance(body, dict):
        return body  # the task schema's check says what is wrong with it
    out = dict(body)
    for fal, mine in RENAMES.items():
        if fal in out and fal not in fields and mine in fields:
            _one_of(out, fal, mine)
            out[mine] = out.pop(fal)
    if "image_size" in out and "image_size" not in fields and {"width", "height"} <= fields:
        _one_of(out, "image_size", "width")
        _one_of(out, "image_size", "height")
        out["width"], out["height"] = _size(out.pop("image_size"))
    return out


def to_fal(body: Mapping[str, Any]) -> dict[str, Any]:
    """A limner input (as the ``fal-queue`` family sends it) in fal's names."""
    back = {mine: fal for fal, mine in RENAMES.items()}
    out = {back.get(name, name): value for name, value in body.items() if name not in ("width", "height")}
    width, height = body.get("width"), body.get("height")
    if width is not None and height is not None:
        out["image_size"] = {"width": width, "height": height}
    return out


def _one_of(body: dict[str, Any], fal: str, mine: str) -> None:
    if body.get(mine) is not None:
        raise InvalidInput(f"send {mine} or fal's {fal}, not both", loc=("body", fal))


def _size(value: Any) -> tuple[Any, Any]:
    if isinstance(value, str):
        preset = SIZE_PRESETS.get(value)
        if preset is None:
            names = ", ".join(SIZE_PRESETS)
            raise InvalidInput(f"image_size must be one of {names}, or {{width, height}}", loc=("body", "image_size"))
        return preset
    if isinstance(value, dict) and set(value) == {"width", "height"}:
        return value["width"], value["height"]  # the task schema checks them as width and height
    raise InvalidInput("image_size must be a preset name or {width, height}", loc=("body", "image_size"))
