"""Real servers for tests: a throwaway PostgreSQL cluster, and limner's own processes."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from limner.webhooks.signing import generate_secret

ROOT = Path(__file__).resolve().parent.parent
# The signing secret of every limner process the tests start (one per test session).
WEBHOOK_SECRET = generate_secret()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pg_bin() -> Path | None:
    """The directory of Debian's PostgreSQL binaries, if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).resolve().parent if which else None


class Postgres:
    """A PostgreSQL cluster on 127.0.0.1 and a free port, owned by the postgres user."""

    def __init__(self, bindir: Path, *, host: str = "127.0.0.1", prefix: list[str] | None = None) -> None:
        """``host``: the address to listen on; ``prefix``: e.g. ``ip netns exec NAME`` to run it
        on another (namespaced) host."""
        self.bindir = bindir
        self.host = host
        self.prefix = prefix or []
        self.root = Path(tempfile.mkdtemp(prefix="limner-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@{host}:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run([*self.prefix, *cmd], check=True, capture_output=True)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data.exists():
            self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
            if self.host != "127.0.0.1":  # trust the test's own private network too
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.host.rsplit('.', 1)[0]}.0/24 trust\n")
        opts = f"-c listen_addresses={self.host} -p {self.port} -k {self.root} -c fsync=on -c max_connections=200"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def reset(self) -> None:
        """Drop every table so a test starts from an empty store."""
        import psycopg

        dsn = f"host={self.host} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def child_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update(
        {
            "LIMNER_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            # Short leases so that a killed worker's jobs come back within seconds.
            "LIMNER_LEASE_S": "3",
            "LIMNER_HEARTBEAT_S": "0.5",
            "LIMNER_STREAM_POLL_S": "0.05",
            # One OS thread per torch op keeps two workers from fighting over two cores.
            "OMP_NUM_THREADS": "1",
            # Webhook receivers in tests listen on loopback; retries come fast.
            "LIMNER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            "LIMNER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LIMNER_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.4",
            "LIMNER_WEBHOOK_POLL_S": "0.05",
            "LIMNER_CLEANUP_INTERVAL_S": "0.3",
        }
    )
    if extra:
        env.update(extra)
    return env


class Proc:
    """A limner process (``serve`` or ``worker``) with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, prefix: list[str] | None = None) -> None:
        """``prefix``: e.g. ``ip netns exec NAME`` to run the process on another host."""
        self.args = args
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "limner", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (a server's workers too)."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        self._log.close()

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_http(url: str, proc: Proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.args} exited:\n{proc.output()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s:\n{proc.output()[-4000:]}")


def wait_workers(base: str, count: int, timeout: float = 120) -> None:
    """Wait until /readyz counts ``count`` workers (each has imported torch and registered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{base}/readyz", timeout=5).json()
        if body.get("workers", 0) >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{count} worker(s) did not attach to {base} in {timeout} s")
