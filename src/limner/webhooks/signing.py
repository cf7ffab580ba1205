"""Standard Webhooks v1 signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature is ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under a ``whsec_<base64>``
secret. The official ``standardwebhooks`` package computes it (MIT, no dependencies of its
own), so what limner sends is by construction what receivers using that package verify.

Rotation: ``LIMNER_WEBHOOK_SECRET`` may hold several secrets, comma-separated, newest first.
Every one of them signs each message and the header carries all the signatures, space
separated, as the spec describes: receivers still on the old secret and those already on the
new one both verify. Drop the old secret once every receiver has the new one.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
MIN_BYTES = 24  # the spec: at least 24 bytes (192 bits), at most 64


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    """Raise ValueError unless ``secret`` is a ``whsec_`` base64 value of 24 to 64 bytes."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_ (e.g. the output of `limner webhooks secret`)")
    try:
        raw = base64.b64decode(secret[len(PREFIX) :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not MIN_BYTES <= len(raw) <= 64:
        raise ValueError(f"a webhook secret holds {MIN_BYTES} to 64 bytes (this one holds {len(raw)})")
    return secret


@dataclass(frozen=True)
class Signer:
    """Signs a message with every secret (the first is the current one)."""

    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("a Signer needs at least one secret")
        for secret in self.secrets:
            check_secret(secret)

    def headers(self, message_id: str, timestamp: int, body: str) -> dict[str, str]:
        when = datetime.fromtimestamp(timestamp, UTC)
        signatures = " ".join(Webhook(s).sign(message_id, when, body) for s in self.secrets)
        return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}
