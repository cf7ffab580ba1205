"""Projects and callers: the identity a job is made under, without any web framework.

While API keys are off there is no identity: the caller is an admin of the ``default`` project.
With keys on, an admin key sees every project; a member key sees only its own. The API's
checks (limner.api.tenancy) and the coordinators that make jobs on a caller's behalf (workflow
steps, batch rows) share this one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from limner.storage.base import DEFAULT_PROJECT, project_of_key


@dataclass(frozen=True)
class Caller:
    """The identity behind a request: its key (None while keys are off), project and role."""

    key_id: str | None
    project: str
    admin: bool

    def sees_project(self, project: str) -> bool:
        return self.admin or project == self.project

    def sees_file(self, storage_key: str) -> bool:
        return self.sees_project(project_of_key(storage_key))

    @property
    def project_filter(self) -> str | None:
        """The project a listing is limited to; None for an admin (every project)."""
        return None if self.admin else self.project


OPEN = Caller(key_id=None, project=DEFAULT_PROJECT, admin=True)


def member_of(project: str, key_id: str | None = None) -> Caller:
    """A caller limited to one project (a workflow's steps run as their workflow's project)."""
    return Caller(key_id=key_id, project=project, admin=False)
