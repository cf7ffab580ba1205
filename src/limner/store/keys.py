"""API keys, stored hashed.

A key is ``lmk_`` plus 32 random bytes (256 bits) in URL-safe base64, shown once when it is
made. The store keeps its SHA-256. bcrypt or argon2 exist to slow down guessing of
low-entropy passwords; nobody can enumerate 2^256 keys however fast the hash is, so a single
SHA-256 is as safe here and keeps checking a key cheap on every request (a lookup by the
hash's unique index).

Every key has a role and a project. An ``admin`` sees and controls everything (every
project's jobs, the keys, workers, cache, usage and the webhook secret); a ``member`` sees only
its project's jobs, files and usage. A key made without a project gets one of its own, named
after its id. The first key ever made is an admin, so a fresh server always has one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping

from limner.errors import InvalidInput
from limner.store.engine import Engines
from limner.store.schema import api_keys

KEY_PREFIX = "lmk_"
ADMIN: Final = "admin"
MEMBER: Final = "member"
Role = Literal["admin", "member"]
PROJECT_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_PROJECT = re.compile(PROJECT_PATTERN)


def check_project(name: str, loc: tuple[str, ...] = ("body", "project")) -> str:
    """A project name: 1-64 letters, digits, '.', '_' or '-' (it is a folder in the media storage)."""
    if not _PROJECT.match(name):
        raise InvalidInput(
            f"project {name!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            loc=loc,
        )
    return name


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None
    role: str = MEMBER
    project: str = "default"

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    @classmethod
    def from_row(cls, m: RowMapping) -> ApiKey:
        return cls(m["id"], m["name"], m["prefix"], m["created_at"], m["revoked_at"], m["role"], m["project"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role,
            "project": self.project,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class KeyStore:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def create(self, name: str, *, project: str | None = None, admin: bool = False) -> tuple[ApiKey, str]:
        """Make a key; returns it and the secret, which is not stored and cannot be shown again.

        ``project`` defaults to a project of the key's own (named after its id). The first key
        made is an admin whatever ``admin`` says: someone must be able to make the others."""
        if project is not None:
            check_project(project)
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = f"key_{secrets.token_hex(6)}"
        now = time.time()
        with self.engines.write.begin() as conn:  # the write lock makes "first" unambiguous
            first = conn.execute(select(api_keys.c.id).limit(1)).first() is None
            role = ADMIN if admin or first else MEMBER
            key = ApiKey(key_id, name, raw[:12], now, None, role, project or key_id)
            conn.execute(
                insert(api_keys).values(
                    id=key.id,
                    name=name,
                    prefix=key.prefix,
                    key_hash=hash_key(raw),
                    created_at=now,
                    role=key.role,
                    project=key.project,
                )
            )
        return key, raw

    def get(self, key_id: str) -> ApiKey | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return ApiKey.from_row(row) if row else None

    def all(self) -> list[ApiKey]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()
            return [ApiKey.from_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        with self.engines.write.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        return ApiKey.from_row(row) if row else None

    def lookup(self, raw: str) -> ApiKey | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(raw))).mappings().first()
        return ApiKey.from_row(row) if row else None

    def any(self) -> bool:
        """Whether a key was ever made (revoked ones count: revoking the last key must not open the server)."""
        with self.engines.read.connect() as conn:
            return conn.execute(select(api_keys.c.id).limit(1)).first() is not None
