"""Loading the catalog: the packaged default entries plus the operator's extra files.

A catalog file is a YAML list of models, or a mapping with a ``models`` list. Anything wrong
in it (bad YAML, an unknown family or task, a field that does not fit) is a CatalogError whose
one-line message names the file, the line and the entry, so ``limner serve`` and ``limner
worker`` stop at start and say where to look.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from limner.catalog.entry import CatalogEntry
from limner.errors import CatalogError, UnknownModel
from limner.routing.spec import RouteEntry
from limner.workflows.spec import WorkflowEntry

SECTIONS = ("models", "workflows", "routes")


class Catalog:
    """Models and workflows by id. Later files override earlier entries with the same id.

    Iterating yields the models; ``workflows()`` the workflows; ``callable(id)`` either kind,
    for the routes that take any of them."""

    def __init__(
        self,
        entries: Iterable[CatalogEntry],
        workflows: Iterable[WorkflowEntry] = (),
        routes: Iterable[RouteEntry] = (),
    ) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        for entry in entries:
            self._entries[entry.id] = entry
        self._workflows: dict[str, WorkflowEntry] = {w.id: w for w in workflows}
        both = sorted(set(self._entries) & set(self._workflows))
        if both:
            raise CatalogError(f"{both[0]} is both a model and a workflow; ids must be unique")
        self._routes: dict[str, RouteEntry] = {r.id: r for r in routes}
        taken = sorted((set(self._entries) | set(self._workflows)) & set(self._routes))
        if taken:
            raise CatalogError(f"{taken[0]} is both a route and a model or workflow; ids must be unique")

    def get(self, model_id: str) -> CatalogEntry:
        entry = self._entries.get(model_id)
        if entry is None:
            raise UnknownModel(
                f"no model {model_id!r} in the catalog; GET /v1/models lists the models", loc=("path", "model_id")
            )
        return entry

    def callable(self, model_id: str) -> CatalogEntry | WorkflowEntry | RouteEntry:
        """The model, workflow or route with this id (a 404 naming it otherwise)."""
        route = self._routes.get(model_id)
        if route is not None:
            return route
        workflow = self._workflows.get(model_id)
        return workflow if workflow is not None else self.get(model_id)

    def route(self, route_id: str) -> RouteEntry | None:
        return self._routes.get(route_id)

    def routes(self) -> list[RouteEntry]:
        return sorted(self._routes.values(), key=lambda r: r.id)

    def workflow(self, workflow_id: str) -> WorkflowEntry | None:
        return self._workflows.get(workflow_id)

    def workflows(self) -> list[WorkflowEntry]:
        return sorted(self._workflows.values(), key=lambda w: w.id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.id))

    def __len__(self) -> int:
        return len(self._entries)

    def with_residency_key(self, key: str) -> list[str]:
        return [e.id for e in self._entries.values() if e.residency_key == key]


def one_line(exc: ValidationError) -> str:
    """pydantic's errors in one line: ``field: message; field: message``."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def read_sections(text: str, origin: str) -> dict[str, list[tuple[Any, int]]]:
    """The file's sections, each a list of (item, line number) pairs."""
    try:
        root = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogError(f"{origin}{line}: not valid YAML: {problem}") from None
    if data is None or root is None:
        return {}
    if isinstance(data, list) and isinstance(root, yaml.SequenceNode):  # a bare list of models
        return {"models": [(item, child.start_mark.line + 1) for item, child in zip(data, root.value, strict=True)]}
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise CatalogError(f"{origin}:1: expected a list of models, or a mapping with a 'models' list")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise CatalogError(f"{origin}:1: unknown section {unknown[0]!r} (a catalog has {', '.join(SECTIONS)})")
    nodes = {key.value: value for key, value in root.value}
    sections: dict[str, list[tuple[Any, int]]] = {}
    for name, items in data.items():
        node = nodes[name]
        if not isinstance(items, list) or not isinstance(node, yaml.SequenceNode):
            raise CatalogError(f"{origin}:{node.start_mark.line + 1}: '{name}' must be a list")
        sections[name] = [(item, child.start_mark.line + 1) for item, child in zip(items, node.value, strict=True)]
    return sections


def _name(item: Any, index: int) -> str:
    return str(item.get("id", f"#{index}")) if isinstance(item, dict) else f"#{index}"


def parse_entries(text: str, origin: str) -> list[CatalogEntry]:
    return parse_file(text, origin)[0]


# A workflow to check once every model is known: (entry, origin, line).
PendingWorkflow = tuple[WorkflowEntry, str, int]


# A route to check once every model is known: (entry, origin, line).
PendingRoute = tuple[RouteEntry, str, int]


def parse_routes(text: str, origin: str) -> list[PendingRoute]:
    routes = []
    for index, (item, line) in enumerate(read_sections(text, origin).get("routes", [])):
        try:
            routes.append((RouteEntry.model_validate(item), origin, line))
        except ValidationError as exc:
            raise CatalogError(f"{origin}:{line}: route {_name(item, index)}: {one_line(exc)}") from None
    return routes


def parse_file(text: str, origin: str) -> tuple[list[CatalogEntry], list[PendingWorkflow]]:
    sections = read_sections(text, origin)
    entries = []
    for index, (item, line) in enumerate(sections.get("models", [])):
        try:
            entries.append(CatalogEntry.model_validate(item))
        except ValidationError as exc:
            raise CatalogError(f"{origin}:{line}: model {_name(item, index)}: {one_line(exc)}") from None
    workflows = []
    for index, (item, line) in enumerate(sections.get("workflows", [])):
        try:
            workflows.append((WorkflowEntry.model_validate(item), origin, line))
        except ValidationError as exc:
            raise CatalogError(f"{origin}:{line}: workflow {_name(item, index)}: {one_line(exc)}") from None
    return entries, workflows


def _default_text() -> str:
    return (resources.files("limner.catalog") / "default.yaml").read_text(encoding="utf-8")


def default_entries() -> list[CatalogEntry]:
    return parse_entries(_default_text(), "default catalog")


def load_catalog(extra_files: Iterable[Path] = ()) -> Catalog:
    entries, pending = parse_file(_default_text(), "default catalog")
    routes = parse_routes(_default_text(), "default catalog")
    for path in extra_files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read catalog file {path}: {exc.strerror or exc}") from None
        more, flows = parse_file(text, str(path))
        entries.extend(more)
        pending.extend(flows)
        routes.extend(parse_routes(text, str(path)))
    models = {e.id: e for e in entries}
    workflows: dict[str, WorkflowEntry] = {}
    for workflow, _origin, _line in pending:  # later files override earlier workflows too
        workflows[workflow.id] = workflow
    for workflow, origin, line in pending:
        if workflows[workflow.id] is not workflow:
            continue
        try:
            workflow.check_against(models)
        except ValueError as exc:
            raise CatalogError(f"{origin}:{line}: workflow {workflow.id}: {exc}") from None
    chosen: dict[str, RouteEntry] = {}
    for route, _origin, _line in routes:  # later files override earlier routes too
        chosen[route.id] = route
    for route, origin, line in routes:
        if chosen[route.id] is not route:
            continue
        try:
            route.check_against(models)
        except ValueError as exc:
            raise CatalogError(f"{origin}:{line}: route {route.id}: {exc}") from None
    return Catalog(entries, workflows.values(), chosen.values())
