"""Who is asking, and what they may see: the one check every read goes through.

Authentication (``limner.api.middleware.auth``) puts a :class:`Caller` on each request. While
API keys are off there is no identity: the caller is an admin of the ``default`` project, and
everything is visible, as on a laptop. With keys on, an admin key sees every project; a member
key sees only its own project's jobs, files, usage and batches, and anything else is a 404,
exactly as if it did not exist (a 403 would confirm that it does).

Files follow their job: media keys are ``projects/<project>/…`` (uploads, stored inputs,
results), so a file's project is read from its key, with no lookup. Keys from before
projects existed (no ``projects/`` prefix) belong to the ``default`` project.
"""

from __future__ import annotations

from fastapi import Request, WebSocket

from limner.errors import Forbidden, RequestNotFound
from limner.store.records import Job
from limner.tenancy import OPEN, Caller

__all__ = ["OPEN", "Caller", "caller_of", "require_admin", "visible_job"]


def caller_of(request: Request | WebSocket) -> Caller:
    """The request's caller (set by the auth middleware; OPEN when keys are off)."""
    caller = request.scope.get("state", {}).get("caller")
    return caller if isinstance(caller, Caller) else OPEN


def visible_job(caller: Caller, job: Job | None, request_id: str, model_id: str | None = None) -> Job:
    """The job, if it exists for this model and the caller may see it; else a 404."""
    if job is None or not caller.sees_project(job.project) or (model_id is not None and job.model_id != model_id):
        where = f" for model {model_id}" if model_id else ""
        raise RequestNotFound(f"no request {request_id}{where}", loc=("path", "request_id"))
    return job


def require_admin(caller: Caller, what: str) -> None:
    """Admin-only routes: a member key gets a 403 that says so (the route exists for everyone)."""
    if not caller.admin:
        raise Forbidden(
            f"{what} needs an admin API key; this key belongs to project {caller.project!r}",
            loc=("header", "authorization"),
        )
