"""Worker processes: start N, replace any that die or wedge, stop them all on exit.

Both `limner serve` (API + workers) and `limner worker` (workers alone, e.g. on a GPU
machine) run their workers as children of a small torch-free parent like this one. A child
that exits (a crash, the OOM killer, a model that hung past its timeout) is replaced; so is
one whose heartbeat in the store went stale while its process lives on (wedged in native
code with the interpreter lock held).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from limner.settings import Settings, child_env
from limner.store.engine import make_engines
from limner.store.workers import WorkerRegistry

log = logging.getLogger("limner.supervisor")
PARENT_ENV = "LIMNER_SUPERVISOR_PID"
CHILD_COMMAND = ("worker", "--child")
# A worker that lived this long was not crash-looping: restart it without backing off.
HEALTHY_S = 10.0


class Supervisor:
    def __init__(self, settings: Settings, count: int, *, grace_s: float = 15.0) -> None:
        self.settings = settings
        self.count = count
        self.grace_s = grace_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.restarts = 0
        self._started: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        if self.count == 0:
            return
        self.procs = [self._spawn(i) for i in range(self.count)]
        self._started = [time.monotonic()] * self.count
        self._thread.start()

    def wait(self) -> None:
        """Block until stop() (for `limner worker`, whose main thread has nothing else to do)."""
        while not self._stop.wait(1.0):
            pass

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = child_env(self.settings)
        env[PARENT_ENV] = str(os.getpid())
        if not self.settings.threads and "OMP_NUM_THREADS" not in env:
            # Share the cores among the workers this parent runs (an explicit OMP_NUM_THREADS wins).
            env["LIMNER_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.count))
        proc = subprocess.Popen([sys.executable, "-m", "limner", *CHILD_COMMAND], env=env)
        log.info("started worker %d (pid %d)", index, proc.pid)
        return proc

    def _watch(self) -> None:
        backoff = [1.0] * self.count
        restart_at: list[float | None] = [None] * self.count
        engines = make_engines(self.settings.store)
        registry = WorkerRegistry(engines)
        try:
            while not self._stop.wait(0.5):
                stale = self._stale_pids(registry)
                now = time.monotonic()
                for index, proc in enumerate(self.procs):
                    if proc.pid in stale and proc.poll() is None:
                        log.error("worker %d (pid %d) stopped sending heartbeats; killing it", index, proc.pid)
                        proc.kill()
                        proc.wait()
                    code = proc.poll()
                    if code is None:
                        continue
                    due = restart_at[index]
                    if due is None:
                        # A worker that dies soon after starting is crash-looping: back off. One
                        # that ran for a while (then was killed, hung, ran out of memory) returns at once.
                        if now - self._started[index] >= HEALTHY_S:
                            backoff[index] = 1.0
                        log.warning(
                            "worker %d (pid %d) exited with %s; restarting in %.0f s",
                            index,
                            proc.pid,
                            code,
                            backoff[index],
                        )
                        restart_at[index] = now + backoff[index]
                        backoff[index] = min(backoff[index] * 2, 30.0)
                    elif now >= due:
                        self.procs[index] = self._spawn(index)
                        self._started[index] = time.monotonic()
                        restart_at[index] = None
                        self.restarts += 1
        finally:
            engines.dispose()

    def _stale_pids(self, registry: WorkerRegistry) -> set[int]:
        """Children of ours whose last heartbeat is older than two leases."""
        try:
            rows = registry.active(within_s=365 * 86400)
        except Exception as exc:  # the store is down: nobody's heartbeat can be judged
            log.warning("cannot read worker heartbeats: %s", exc)
            return set()
        host = socket.gethostname()
        cutoff = time.time() - 2 * self.settings.lease_s
        ours = {p.pid for p in self.procs}
        return {w.pid for w in rows if w.hostname == host and w.pid in ours and w.heartbeat_at < cutoff}

    def stop(self) -> None:
        """SIGTERM every worker (each finishes its batch), then SIGKILL stragglers."""
        self._stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0f s; killing it", proc.pid, self.grace_s)
                proc.kill()
                proc.wait()


def stop_with_supervisor() -> None:
    """In a worker that a supervisor started: ask Linux to SIGTERM it when the supervisor
    dies, so a killed parent leaves no orphan workers (they finish their batch and stop)."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != expected:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
