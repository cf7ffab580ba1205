"""Typed views of what the server answers: statuses, files and per-task results.

Every object keeps the JSON it was made from in ``.raw``, so a field this version of the
client does not name yet is still there. Results are chosen by the output key the task
schema fixes (``images``, ``audio``, ``videos``, ``meshes``), never by the model's name.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

QUEUED, RUNNING, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"


class _View(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Self:
        return cls.model_validate({**body, "raw": body})


class File(_View):
    """One output (or input) file. ``url`` is a /v1/files URL or a presigned S3 URL; the
    media's measured properties (``width``, ``height``, ``duration_s``, ``fps``, ``frames``,
    ``sample_rate``, ``vertices`` …) are attributes when the server reports them."""

    url: str
    content_type: str | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


class Progress(_View):
    stage: str = ""
    step: int = 0
    total: int = 0
    percent: float = 0.0
    eta_s: float | None = None
    preview_url: str | None = None


class LogLine(_View):
    message: str = ""
    level: str = "info"
    timestamp: float | None = None
    source: str | None = None


class Status(_View):
    """One status object (the status route, or one Server-Sent Event)."""

    status: str
    request_id: str
    state: str | None = None
    model_id: str | None = None
    queue_position: int | None = None
    progress: Progress | None = None
    logs: list[LogLine] = Field(default_factory=list)
    error: str | None = None
    error_type: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Self:
        data = {**body, "raw": body}
        if isinstance(body.get("progress"), dict):
            data["progress"] = Progress.of(body["progress"])
        data["logs"] = [LogLine.of(line) for line in body.get("logs") or [] if isinstance(line, dict)]
        return cls.model_validate(data)

    @property
    def done(self) -> bool:
        return self.status == COMPLETED

    @property
    def succeeded(self) -> bool:
        return self.done and self.state == "succeeded"


class Result(_View):
    """A finished job's result: what every task reports besides its files."""

    seed: int | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)
    input: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None

    @property
    def files(self) -> list[File]:
        """Every output file, whichever key it is under."""
        out: list[File] = []
        for value in self.raw.values():
            if isinstance(value, list):
                out.extend(File.of(v) for v in value if isinstance(v, dict) and "url" in v)
        return out


class ImageResult(Result):
    images: list[File]


class AudioResult(Result):
    audio: list[File]


class VideoResult(Result):
    videos: list[File]
    previews: list[File] = Field(default_factory=list)


class MeshResult(Result):
    meshes: list[File]
    previews: list[File] = Field(default_factory=list)


class UploadedFile(_View):
    """An upload to ``POST /v1/files``: pass ``url`` in any file field."""

    url: str
    key: str
    kind: str
    content_type: str
    file_size: int
    width: int | None = None
    height: int | None = None


# The output key a task schema fixes -> the typed result for it.
RESULT_TYPES: dict[str, type[Result]] = {
    "images": ImageResult,
    "audio": AudioResult,
    "videos": VideoResult,
    "meshes": MeshResult,
}


def parse_result(body: dict[str, Any], request_id: str | None = None) -> Result:
    """The typed result of a result body (a plain :class:`Result` for outputs this client
    does not know yet; ``.raw`` has them)."""
    data: dict[str, Any] = {**body, "raw": body, "request_id": request_id}
    for key, cls in RESULT_TYPES.items():
        if isinstance(body.get(key), list):
            data[key] = [File.of(f) for f in body[key] if isinstance(f, dict)]
            for extra in ("previews",):
                if isinstance(body.get(extra), list):
                    data[extra] = [File.of(f) for f in body[extra] if isinstance(f, dict)]
            return cls.model_validate(data)
    return Result.model_validate(data)


class Batch(_View):
    """A batch run: its status and ``request_counts`` (total, queued, running, succeeded,
    failed, canceled); ``output_url`` and ``error_url`` give its JSONL lines."""

    id: str
    model: str
    status: str
    priority: str = "low"
    request_counts: dict[str, int] = Field(default_factory=dict)
    output_url: str = ""
    error_url: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    retry_of: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "cancelled", "failed")
