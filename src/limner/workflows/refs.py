"""References inside a workflow: how a step's input names the workflow's inputs and other
steps' results.

- ``$input.<field>[.<path>]``: a workflow input;
- ``$<step>.<path>``: a field of a step's result, e.g. ``$cutout.images.0.url``; for a step that
  fans out (``for_each``), ``$<step>`` is the list of its runs' results and
  ``$<step>.<key>`` gathers that key over the runs (``$views.images``: every run's images);
- ``$item[.<path>]`` and ``$index``: inside a ``for_each`` step, the element and its position.

A string that is exactly one reference takes the referenced value with its type; references
inside longer text are written ``${input.scene}`` and interpolated as text.
Paths walk dicts by key and lists by index.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

WHOLE: Final = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)$")
INLINE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\}")
ITEM: Final = "item"
INDEX: Final = "index"
INPUT: Final = "input"
RESERVED: Final = frozenset({INPUT, ITEM, INDEX})


class Missing(LookupError):
    """A reference whose value is not there (a path past the end of a result)."""


@dataclass(frozen=True)
class Ref:
    root: str  # "input", "item", "index" or a step id
    path: tuple[str, ...]

    def __str__(self) -> str:
        return "$" + ".".join((self.root, *self.path))


def parse(text: str) -> Ref | None:
    """The reference a whole string is, or None."""
    match = WHOLE.match(text)
    if not match:
        return None
    return Ref(match.group(1), tuple(p for p in match.group(2).split(".") if p))


def refs_in(value: Any) -> Iterator[Ref]:
    """Every reference in a value (whole strings and ``${…}`` inside strings, at any depth)."""
    if isinstance(value, str):
        whole = parse(value)
        if whole is not None:
            yield whole
            return
        for match in INLINE.finditer(value):
            yield _inline_ref(match)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from refs_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from refs_in(item)


def walk(value: Any, path: tuple[str, ...], where: str) -> Any:
    """Follow ``path`` into ``value``. A fan-out list gathers a key over its runs."""
    for part in path:
        if isinstance(value, Mapping):
            if part not in value:
                raise Missing(f"{where}: no {part!r} (there is {', '.join(map(str, value)) or 'nothing'})")
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                raise Missing(f"{where}: index {index} is past the end ({len(value)} items)")
            value = value[index]
        elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            gathered: list[Any] = []
            for run in value:
                got = walk(run, (part,), where)
                gathered.extend(got if isinstance(got, list) else [got])
            value = gathered
        else:
            raise Missing(f"{where}: cannot take {part!r} of a {type(value).__name__}")
    return value


def resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with every reference replaced by what it names in ``scope`` (roots: "input",
    step ids, and "item"/"index" in a fan-out run)."""
    if isinstance(value, str):
        whole = parse(value)
        if whole is not None:
            return lookup(whole, scope)
        return INLINE.sub(lambda m: _text(lookup(_inline_ref(m), scope)), value)
    if isinstance(value, Mapping):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value


def lookup(ref: Ref, scope: Mapping[str, Any]) -> Any:
    if ref.root not in scope:
        raise Missing(f"{ref}: {ref.root!r} is not available here")
    return walk(scope[ref.root], ref.path, str(ref))


def _inline_ref(match: re.Match[str]) -> Ref:
    return Ref(match.group(1), tuple(p for p in match.group(2).split(".") if p))


def _text(value: Any) -> str:
    return "" if value is None else str(value)
