"""``params: coerce``: map an input onto what one target can take, and say what changed.

Sizes go to the nearest the target allows (clamped to its minimum and maximum, rounded to its
size multiple, scaled down under its pixel limit, keeping the aspect), steps, outputs and
guidance are clamped, and fields the target refuses are dropped. Every change is one record
``{target, field, from, to}``. Anything else that does not fit stays a reason to skip it.
"""

from __future__ import annotations

import math
from typing import Any

from limner.catalog.entry import CatalogEntry

CLAMPED = (
    ("num_inference_steps", "max_steps"),
    ("num_outputs", "max_outputs"),
    ("guidance_scale", "max_guidance_scale"),
)


def coerce(entry: CatalogEntry, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = dict(body)
    changes: list[dict[str, Any]] = []

    def note(field: str, before: Any, after: Any) -> None:
        changes.append({"target": entry.id, "field": field, "from": before, "to": after})

    for name in entry.unsupported:
        if out.get(name) is not None:
            note(name, out.pop(name), None)
    limits = entry.limits
    width, height = out.get("width"), out.get("height")
    if isinstance(width, int) and isinstance(height, int):
        new_w, new_h = _size(width, height, limits.min_width, limits.min_height, limits.max_width,
                             limits.max_height, limits.max_pixels, limits.size_multiple)  # fmt: skip
        if new_w != width:
            out["width"] = new_w
            note("width", width, new_w)
        if new_h != height:
            out["height"] = new_h
            note("height", height, new_h)
    for field, limit in CLAMPED:
        value, ceiling = out.get(field), getattr(limits, limit, None)
        if isinstance(value, int | float) and ceiling is not None and value > ceiling:
            out[field] = ceiling
            note(field, value, ceiling)
    return out, changes


def _size(w: int, h: int, min_w: int, min_h: int, max_w: int, max_h: int, max_px: int, step: int) -> tuple[int, int]:
    scale = min(1.0, max_w / w, max_h / h, math.sqrt(max_px / (w * h)))
    w2, h2 = w * scale, h * scale

    def fit(value: float, low: int, high: int) -> int:
        snapped = max(step, round(value / step) * step)
        while snapped > high:
            snapped -= step
        while snapped < low:
            snapped += step
        return snapped

    w3, h3 = fit(w2, min_w, max_w), fit(h2, min_h, max_h)
    while w3 * h3 > max_px and (w3 > min_w or h3 > min_h):  # rounding up went over the pixel limit
        if w3 >= h3 and w3 - step >= min_w:
            w3 -= step
        elif h3 - step >= min_h:
            h3 -= step
        else:
            break
    return w3, h3
