"""Start, crash and restart each way of serving the model, on 127.0.0.1, from limner's venv.

A stack is the processes that take HTTP requests and run the model. Its store (limner's SQLite
file, Celery's Redis server) is not part of it: ``crash()`` SIGKILLs every process of the stack
(the launched process and all its descendants, found by pid before the first kill: BentoML's
workers and Ray's raylet make sessions of their own, so a process group would miss them) and
leaves the store alone; ``start()`` brings the stack back on the same port and the same store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs installed; psutil ships with limner's venv

from benchmarks.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """One launched command, its output appended to a log file."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log_path = list(argv), env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tree(self) -> list[psutil.Process]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> int:
        """SIGKILL the process and every descendant; how many were killed. All are SIGSTOPped
        first, so that none sees another die and reacts (limner's workers, for one, get SIGTERM
        when their supervisor dies and would hand their jobs back): a crash, not a shutdown."""
        victims = self.tree()
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.send_signal(sig)
        if self.proc is not None:
            self.proc.wait(30)
        psutil.wait_procs(victims, timeout=10)
        return len(victims)

    def stop(self) -> None:
        """SIGTERM the tree, then SIGKILL what is left after 20 s."""
        victims = self.tree()
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(victims, timeout=20)
        for victim in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Config:
    model_dir: Path
    peers_python: str  # .venv-peers/bin/python
    replicas: int = 2
    max_batch: int = 8
    batch_wait_s: float = 0.01
    width: int = 64
    height: int = 64
    steps: int = 4


@dataclass
class Stack:
    """One way of serving the model. ``client`` picks how loads talk to it: ``sync`` (POST the job,
    the PNG comes back), ``limner`` (the /v1/run route, then the file; the queue route for the
    crash run) or ``celery`` (submit, then poll the task)."""

    name: str
    client: str
    persists: str  # what happens to an accepted job: where it is kept
    url: str
    procs: list[Proc]
    version: str
    batching: str
    path: str = "/predict"  # sync clients' route
    home: Path | None = None
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        for proc in self.procs:
            proc.start()

    def crash(self) -> int:
        return sum(proc.kill() for proc in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def alive(self) -> bool:
        return all(proc.alive() for proc in self.procs)

    def logs(self) -> str:
        return "\n".join(f"--- {p.argv[:4]}\n{p.log_tail()}" for p in self.procs)


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMNER_", "PEER_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "TQDM_DISABLE": "1",
        }
    )
    env.update(extra or {})
    return env


def scratch(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"limner-peers-{name}-"))


def peer_version(python: str, package: str) -> str:
    done = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def limner(cfg: Config, *, batching: bool, store: str | None = None) -> Stack:
    """``limner serve --workers N``: the API and N local workers on one SQLite file (the catalog
    entry's own batching: limner/tiny-sd has max_batch_size 8, batch_wait_ms 0)."""
    home = scratch("limner")
    port = free_port()
    env = base_env({"LIMNER_HOME": str(home), "LIMNER_BATCHING": "1" if batching else "0"})
    if store:
        env["LIMNER_STORE"] = store
    argv = [sys.executable, "-m", "limner", "serve", "--workers", str(cfg.replicas), "--port", str(port)]
    proc = Proc(argv, env, home / "serve.log")
    from importlib.metadata import version

    return Stack(
        name="limner" if batching else "limner-no-batching",
        client="limner",
        persists="SQLite (WAL, synchronous=FULL), before the 202",
        url=f"http://127.0.0.1:{port}",
        procs=[proc],
        version=version("limner"),
        batching="catalog max_batch_size 8, batch_wait_ms 0" if batching else "off (LIMNER_BATCHING=0)",
        home=home,
    )


def batching_args(cfg: Config) -> list[str]:
    """The replicas and batching flags the LitServe and Ray Serve apps take alike."""
    return ["--replicas", str(cfg.replicas), "--max-batch", str(cfg.max_batch), "--batch-wait-s", str(cfg.batch_wait_s)]


def litserve(cfg: Config) -> Stack:
    port = free_port()
    home = scratch("litserve")
    argv = [cfg.peers_python, "-m", "benchmarks.peers.litserve_app", "--port", str(port), "--model", str(cfg.model_dir)]
    argv += batching_args(cfg)
    return Stack(
        name="litserve",
        client="sync",
        persists="memory (worker queues)",
        url=f"http://127.0.0.1:{port}",
        procs=[Proc(argv, base_env(), home / "litserve.log")],
        version=peer_version(cfg.peers_python, "litserve"),
        batching=f"max_batch_size {cfg.max_batch}, batch_timeout {cfg.batch_wait_s:g} s",
        path="/predict",
    )


def ray_serve(cfg: Config) -> Stack:
    port = free_port()
    home = scratch("ray")
    argv = [sys.executable, "-m", "benchmarks.peers.ray_app", "--port", str(port), "--model", str(cfg.model_dir)]
    argv += batching_args(cfg)
    from importlib.metadata import version

    return Stack(
        name="ray-serve",
        client="sync",
        persists="memory (proxy and replicas)",
        url=f"http://127.0.0.1:{port}",
        procs=[Proc(argv, base_env({"RAY_AUTH_MODE": "disabled"}), home / "ray.log")],
        version=version("ray"),
        batching=f"@serve.batch max_batch_size {cfg.max_batch}, batch_wait_timeout_s {cfg.batch_wait_s:g}",
        path="/",
    )


def bentoml(cfg: Config) -> Stack:
    port = free_port()
    home = scratch("bentoml")
    bentoml_cli = str(Path(cfg.peers_python).parent / "bentoml")
    argv = [bentoml_cli, "serve", "benchmarks.peers.bentoml_app:TinySD", "--host", "127.0.0.1", "--port", str(port)]
    env = base_env(
        {
            "PEER_MODEL_DIR": str(cfg.model_dir),
            "PEER_REPLICAS": str(cfg.replicas),
            "PEER_MAX_BATCH": str(cfg.max_batch),
            "BENTOML_HOME": str(home / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
        }
    )
    return Stack(
        name="bentoml",
        client="bentoml",
        persists="memory (workers)",
        url=f"http://127.0.0.1:{port}",
        procs=[Proc(argv, env, home / "bentoml.log")],
        version=peer_version(cfg.peers_python, "bentoml"),
        batching=f"adaptive, max_batch_size {cfg.max_batch}, max_latency_ms default (60000)",
        path="/generate",
    )


class Redis:
    """Debian's redis-server on a free loopback port. Built-in defaults (RDB snapshots, no AOF)
    unless ``fsync_always``: appendonly with appendfsync always, i.e. every write on disk before
    its reply, as limner's SQLite commit is."""

    def __init__(self, *, fsync_always: bool = False) -> None:
        self.dir = scratch("redis")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        if fsync_always:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        self.fsync_always = fsync_always
        self.proc = Proc(argv, base_env(), self.dir / "redis.log")

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
            )
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise TimeoutError(f"redis-server did not start: {self.proc.log_tail()}")

    def llen(self, key: str) -> int:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "llen", key], capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip() or 0)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True, check=True)

    def stop(self) -> None:
        self.proc.stop()


def celery(cfg: Config, redis: Redis, *, acks_late: bool = False, worker: bool = True) -> Stack:
    """The FastAPI app (one uvicorn process, like limner's API) and a Celery worker with one pool
    process per replica, on ``redis`` (broker and result backend)."""
    api_port = free_port()
    home = scratch("celery")
    env = base_env({"PEER_BROKER": redis.url, "PEER_MODEL_DIR": str(cfg.model_dir)})
    if acks_late:
        env["PEER_ACKS_LATE"] = "1"
    api = Proc(
        [
            cfg.peers_python,
            "-m",
            "uvicorn",
            "benchmarks.peers.celery_app:api",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env,
        home / "api.log",
    )
    procs = [api]
    if worker:
        procs.append(
            Proc(
                [
                    cfg.peers_python,
                    "-m",
                    "celery",
                    "-A",
                    "benchmarks.peers.celery_app",
                    "worker",
                    "--concurrency",
                    str(cfg.replicas),
                    "--pool",
                    "prefork",
                    "--loglevel",
                    "warning",
                    "--hostname",
                    f"peers-{api_port}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env,
                home / "worker.log",
            )
        )
    return Stack(
        name="celery-acks-late" if acks_late else "celery",
        client="celery",
        persists=(
            "Redis list ("
            + ("AOF, fsync always" if redis.fsync_always else "RDB snapshots, no AOF")
            + ")"
            + (", acks_late" if acks_late else ", acked on receipt")
        ),
        url=f"http://127.0.0.1:{api_port}",
        procs=procs,
        version=peer_version(cfg.peers_python, "celery"),
        batching="none (one task per pool process)",
    )


def wait_http(url: str, timeout: float, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if stack is not None and not stack.alive():
            raise RuntimeError(f"{stack.name} exited:\n{stack.logs()}")
        time.sleep(0.2)
    raise TimeoutError(url)
