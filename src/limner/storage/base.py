"""The storage interface: media files under server-made keys."""

from __future__ import annotations

import re
from typing import Protocol

from limner.errors import InvalidInput

# Keys are made by limner ("results/<job>/0.png", "inputs/<sha256>.png"); this pattern is
# also the guard that keeps a key requested over HTTP inside the storage root.
KEY_PATTERN = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,127}/){0,8}[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REF_PREFIX = "storage://"
# Media keys are grouped by project (tenancy): projects/<project>/uploads/…, …/inputs/…,
# …/results/<job id>/…. Keys from before projects existed have no prefix: the default project.
PROJECTS_PREFIX = "projects/"
DEFAULT_PROJECT = "default"


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key) or ".." in key:
        raise InvalidInput(f"not a valid storage key: {key!r}", loc=("path", "key"))
    return key


def ref(key: str) -> str:
    """How a stored file is referenced inside job inputs and results."""
    return REF_PREFIX + key


def key_of(reference: str) -> str | None:
    return check_key(reference[len(REF_PREFIX) :]) if reference.startswith(REF_PREFIX) else None


class Storage(Protocol):
    """Where inputs and results live. Implementations: local files (default) and S3."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str, api_base: str) -> str:
        """A URL a client can GET the file from."""
        ...

    def key_for_url(self, url: str) -> str | None:
        """The key of a URL this storage itself hands out (other than the API's /v1/files/
        URLs), so that such a URL given back as an input is read, not fetched; else None."""
        ...


def project_key(project: str, key: str) -> str:
    """``key`` inside ``project``'s folder of the media storage."""
    return f"{PROJECTS_PREFIX}{project}/{key}"


def project_of_key(key: str) -> str:
    """The project a media key belongs to (``projects/<project>/…``; older keys: default)."""
    if key.startswith(PROJECTS_PREFIX):
        project, _, rest = key[len(PROJECTS_PREFIX) :].partition("/")
        if project and rest:
            return project
    return DEFAULT_PROJECT


def result_key(project: str, job_id: str, name: str) -> str:
    """Where a job's output file goes (one key per job and output: a re-run overwrites)."""
    return project_key(project, f"results/{job_id}/{name}")


def is_result_of(key: str, job_id: str) -> bool:
    """Whether ``key`` is one of ``job_id``'s own output files (not a shared input)."""
    parts = key.split("/")
    legacy = len(parts) == 3 and parts[:2] == ["results", job_id]
    return legacy or (len(parts) == 5 and parts[0] == "projects" and parts[2:4] == ["results", job_id])
