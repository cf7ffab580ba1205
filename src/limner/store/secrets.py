"""Secrets the server makes for itself, kept in the job store.

The generated webhook signing secret and the key that signs /v1/files URLs live here rather
than under ``LIMNER_HOME``: API replicas and workers on other machines share the store, not a
home directory, and every replica must sign with the same secret. Whoever can read the store
can already read every job and result, so this adds no new exposure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from limner.store.engine import Engines
from limner.store.schema import server_secrets

WEBHOOK_SECRET = "webhook_signing"  # noqa: S105 - the name of a stored secret, not one
FILE_URL_KEY = "file_url_signing"
REALTIME_SECRET = "realtime_lane"  # noqa: S105 - API processes authenticate to workers' real-time lanes


def get_or_create(engines: Engines, name: str, make: Callable[[], str]) -> str:
    """The stored secret ``name``, created with ``make()`` the first time (once, even when
    several processes race: the loser of the insert reads the winner's)."""
    with engines.read.connect() as conn:
        value = conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name)).scalar()
    if value is not None:
        return str(value)
    try:
        with engines.write.begin() as conn:
            conn.execute(insert(server_secrets).values(name=name, value=make(), created_at=time.time()))
    except IntegrityError:
        pass
    with engines.write.connect() as conn:
        return str(conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name)).scalar_one())
