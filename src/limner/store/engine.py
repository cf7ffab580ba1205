"""Database engines for the job store, and schema migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a commit is on disk
before it returns, so a 202 means the job survives a crash or a power cut. Writers take the
write lock up front (``BEGIN IMMEDIATE``) so a read-then-write transaction never fails half-way
with "database is locked"; readers use a second engine whose transactions never block writers.
PostgreSQL uses one engine for both.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from limner.errors import StoreUnavailable


@dataclass(frozen=True)
class Engines:
    """A write engine and a read engine (the same object outside SQLite)."""

    write: Engine
    read: Engine
    url: str

    @property
    def dialect(self) -> str:
        return self.write.dialect.name

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; everything else is passed through."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


# A worker on a machine that drops off the network leaves its open transaction (and the row
# locks it holds) on the server until TCP notices, which by default takes hours; meanwhile the
# reaper blocks on those locks. The server ends such sessions itself: idle in a transaction for
# 15 s, or silent to keepalives for about 20 s. No statement waits more than 5 s for a lock.
PG_SESSION = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "options": (
        "-c lock_timeout=5000 -c idle_in_transaction_session_timeout=15000"
        " -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=3 -c tcp_keepalives_count=3"
    ),
}


def make_engines(url: str) -> Engines:
    url = normalize_url(url)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Engines(write=_sqlite_engine(url, "BEGIN IMMEDIATE"), read=_sqlite_engine(url, "BEGIN"), url=url)
    if make_url(url).get_backend_name() == "sqlite":
        # In-memory SQLite cannot be shared between engines or processes.
        raise StoreUnavailable("an in-memory SQLite store cannot be shared; use sqlite:///path")
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=PG_SESSION)
    return Engines(write=engine, read=engine, url=url)


def _alembic_config() -> Config:
    cfg = Config()
    location = resources.files("limner.store") / "migrations"
    cfg.set_main_option("script_location", str(location))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@contextmanager
def _migration_lock(engines: Engines) -> Iterator[None]:
    """Serialize migrations between processes that start at the same time."""
    path = sqlite_path(engines.url)
    if path is not None:
        with open(f"{path}.migrate-lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    lock_engine = create_engine(engines.url, poolclass=NullPool)
    with lock_engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(786001)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(786001)"))
            conn.commit()
    lock_engine.dispose()


def current_revision(engines: Engines) -> str | None:
    with engines.read.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engines: Engines) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    try:
        with _migration_lock(engines):
            if current_revision(engines) == head_revision():
                return
            cfg = _alembic_config()
            with engines.write.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except StoreUnavailable:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"cannot open the job store at {redact(engines.url)}: {exc}") from exc


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
