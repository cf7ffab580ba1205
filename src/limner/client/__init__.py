"""Python client for limner's HTTP API: :class:`Client` and :class:`AsyncClient`.

Importing it never imports torch (nor anything of the server): httpx, httpx-sse and pydantic.
"""

from limner.client.aio import AsyncClient, AsyncRequestHandle
from limner.client.errors import ApiError, JobFailed, RequestTimeout
from limner.client.models import (
    AudioResult,
    File,
    ImageResult,
    LogLine,
    MeshResult,
    Progress,
    Result,
    Status,
    UploadedFile,
    VideoResult,
    parse_result,
)
from limner.client.protocol import RetryPolicy
from limner.client.sync import Client, RequestHandle

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncRequestHandle",
    "AudioResult",
    "Client",
    "File",
    "ImageResult",
    "JobFailed",
    "LogLine",
    "MeshResult",
    "Progress",
    "RequestHandle",
    "RequestTimeout",
    "Result",
    "RetryPolicy",
    "Status",
    "UploadedFile",
    "VideoResult",
    "parse_result",
]
