"""``limner serve`` and ``limner worker``."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from limner.catalog import Catalog
from limner.errors import CatalogError
from limner.logs import configure_logging
from limner.settings import Settings, SettingsError, load_settings

Home = Annotated[Path | None, typer.Option("--home", help="LIMNER_HOME: store, files and models live here.")]
Store = Annotated[str | None, typer.Option("--store", help="LIMNER_STORE: sqlite:///… or postgresql://….")]
Storage = Annotated[str | None, typer.Option("--storage", help="LIMNER_STORAGE: file:///….")]
CatalogFiles = Annotated[
    list[Path] | None, typer.Option("--catalog", help="Extra catalog YAML (repeatable; LIMNER_CATALOG).")
]


def _settings(**flags: object) -> Settings:
    """The settings, or exit 2 with one line naming each bad setting."""
    catalog = flags.pop("catalog", None)
    if catalog:
        flags["catalog"] = tuple(catalog)  # type: ignore[arg-type]
    try:
        return load_settings(**flags)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _catalog(settings: Settings) -> Catalog:
    """The catalog, or exit 2 with one line naming the file, the line and what is wrong."""
    from limner.catalog import load_catalog

    try:
        return load_catalog(settings.catalog)
    except CatalogError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_format)
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
    executor: Annotated[
        str | None, typer.Option("--executor", help="LIMNER_EXECUTOR: local (worker processes) or ray (Ray Serve).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="LIMNER_RAY_ADDRESS: the Ray cluster; empty starts a local Ray.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="LIMNER_TLS_CERT: serve HTTPS with this PEM certificate.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="LIMNER_TLS_KEY: its PEM private key.")] = None,
) -> None:
    """Start the API and its worker processes (or, with --executor ray, a dispatcher that runs
    models as Ray Serve deployments); over HTTPS with --tls-cert and --tls-key."""
    import uvicorn

    from limner.api.app import create_app
    from limner.runtime.supervisor import Supervisor

    settings = _settings(
        host=host,
        port=port,
        workers=workers,
        home=home,
        store=store,
        storage=storage,
        catalog=catalog,
        executor=executor,
        ray_address=ray_address,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    _logging(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    children, what = settings.workers, "worker(s)"
    if settings.executor == "ray":
        from limner.executors import ray_missing

        if problem := ray_missing():
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2)
        # One dispatcher process feeds Ray; Ray's autoscaler decides how many replicas run.
        children, what = min(settings.workers, 1), f"Ray dispatcher(s) for {settings.ray_address or 'a local Ray'}"
    models = _catalog(settings)  # a bad catalog stops the server before anything starts
    supervisor = Supervisor(settings, children)
    app = create_app(settings, models, on_stop=supervisor.stop)  # runs migrations before any worker starts
    supervisor.start()
    scheme = "https" if settings.tls_cert else "http"
    typer.echo(
        f"limner on {scheme}://{settings.host}:{settings.port} — {children} {what}, "
        f"store {settings.store}, storage {settings.storage}"
    )
    try:
        # JSON logs: uvicorn's loggers go through the root handler instead of its own text config.
        log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            # One log line per request costs about a tenth of a submission's CPU; limner logs
            # what happens to jobs instead. LIMNER_ACCESS_LOG=1 turns it back on.
            access_log=settings.access_log,
            timeout_graceful_shutdown=5,
            log_config=log_config,
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
    _logging(settings)
    models = _catalog(settings)
    if child:
        _run_worker(settings, models)
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


def _run_worker(settings: Settings, catalog: Catalog) -> None:
    # transformers warns about optional vision backends at import time; limner logs its own.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from limner.runtime.supervisor import stop_with_supervisor

    if settings.executor == "ray":  # this child dispatches to Ray instead of running models
        from limner.executors.dispatch import run_dispatcher

        stop_with_supervisor()
        run_dispatcher(settings, catalog)
        return
    from limner.runtime.worker import Worker

    runner = Worker(settings, catalog)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("limner.worker").info("signal %d: finishing the current batch, then stopping", signum)
        runner.stop_event.set()
        runner.work_ready.set()  # stop waiting for work

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_with_supervisor()
    runner.serve()
