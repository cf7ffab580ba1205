"""``limner serve`` and ``limner worker``."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from limner.settings import Settings, load_settings

Home = Annotated[Path | None, typer.Option("--home", help="LIMNER_HOME: store, files and models live here.")]
Store = Annotated[str | None, typer.Option("--store", help="LIMNER_STORE: sqlite:///… or postgresql://….")]
Storage = Annotated[str | None, typer.Option("--storage", help="LIMNER_STORAGE: file:///….")]
CatalogFiles = Annotated[
    list[Path] | None, typer.Option("--catalog", help="Extra catalog YAML (repeatable; LIMNER_CATALOG).")
]


def _settings(**flags: object) -> Settings:
    catalog = flags.pop("catalog", None)
    if catalog:
        flags["catalog"] = tuple(catalog)  # type: ignore[arg-type]
    return load_settings(**flags)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def serve(
    host: Annotated[str | None, typer.Option("--host", help="LIMNER_HOST (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="LIMNER_PORT (default 7860).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="LIMNER_WORKERS: worker processes; 0 = API only.")
    ] = None,
    home: Home = None,
    store: Store = None,
    storage: Storage = None,
    catalog: CatalogFiles = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="LIMNER_TLS_CERT: serve HTTPS with this PEM certificate.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="LIMNER_TLS_KEY: its PEM private key.")] = None,
) -> None:
    """Start the API and its worker processes (over HTTPS with --tls-cert and --tls-key)."""
    import uvicorn

    from limner.api.app import create_app
    from limner.runtime.supervisor import Supervisor

    _logging()
    settings = _settings(
        host=host,
        port=port,
        workers=workers,
        home=home,
        store=store,
        storage=storage,
        catalog=catalog,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(settings, settings.workers)
    app = create_app(settings, on_stop=supervisor.stop)  # runs migrations before any worker starts
    supervisor.start()
    scheme = "https" if settings.tls_cert else "http"
    typer.echo(
        f"limner on {scheme}://{settings.host}:{settings.port} — {settings.workers} worker(s), "
        f"store {settings.store}, storage {settings.storage}"
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_graceful_shutdown=5,
            ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
            ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        )
    finally:
        supervisor.stop()


def worker(
    home: Home = None,
    store: Store = None,
    storage: Storage = None,
    catalog: CatalogFiles = None,
    device: Annotated[str | None, typer.Option("--device", help="LIMNER_DEVICE: auto, cpu, cuda, cuda:N, mps.")] = None,
    memory_budget_mb: Annotated[
        int | None, typer.Option("--memory-budget-mb", help="LIMNER_MEMORY_BUDGET_MB; 0 = auto.")
    ] = None,
    processes: Annotated[int, typer.Option("--processes", help="Worker processes to run and supervise.")] = 1,
    child: Annotated[bool, typer.Option("--child", hidden=True, help="Run one worker in this process.")] = False,
) -> None:
    """Run workers against a job store, supervised: a worker that dies, hangs past its
    timeout or wedges is replaced (`limner serve` does the same for the workers it starts)."""
    settings = _settings(
        home=home, store=store, storage=storage, catalog=catalog, device=device, memory_budget_mb=memory_budget_mb
    )
    _logging()
    if child:
        _run_worker(settings)
        return
    from limner.runtime.supervisor import Supervisor

    supervisor = Supervisor(settings, processes)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("limner.supervisor").info("signal %d: stopping the workers", signum)
        supervisor.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.start()
    supervisor.wait()


def _run_worker(settings: Settings) -> None:
    # transformers warns about optional vision backends at import time; limner logs its own.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from limner.catalog import load_catalog
    from limner.runtime.supervisor import stop_with_supervisor
    from limner.runtime.worker import Worker

    runner = Worker(settings, load_catalog(settings.catalog))

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("limner.worker").info("signal %d: finishing the current batch, then stopping", signum)
        runner.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_with_supervisor()
    runner.serve()
