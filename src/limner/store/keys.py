"""API keys, stored hashed.

A key is ``lmk_`` plus 32 random bytes (256 bits) in URL-safe base64, shown once when it is
made. The store keeps its SHA-256. bcrypt or argon2 exist to slow down guessing of
low-entropy passwords; nobody can enumerate 2^256 keys however fast the hash is, so a single
SHA-256 is as safe here and keeps checking a key cheap on every request (a lookup by the
hash's unique index).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping

from limner.store.engine import Engines
from limner.store.schema import api_keys

KEY_PREFIX = "lmk_"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None

    @classmethod
    def from_row(cls, m: RowMapping) -> ApiKey:
        return cls(m["id"], m["name"], m["prefix"], m["created_at"], m["revoked_at"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


class KeyStore:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def create(self, name: str) -> tuple[ApiKey, str]:
        """Make a key; returns it and the secret, which is not stored and cannot be shown again."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=f"key_{secrets.token_hex(6)}", name=name, prefix=raw[:12], created_at=time.time(), revoked_at=None
        )
        with self.engines.write.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key.id, name=name, prefix=key.prefix, key_hash=hash_key(raw), created_at=key.created_at
                )
            )
        return key, raw

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
