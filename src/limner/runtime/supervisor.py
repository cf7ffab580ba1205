"""Worker processes for ``limner serve``: start N, restart any that die, stop them on exit.

Workers are separate processes (``python -m limner worker``) so the API process never
imports torch and a model that crashes its process takes no API down with it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from limner.settings import Settings, child_env

log = logging.getLogger("limner.supervisor")
PARENT_ENV = "LIMNER_SUPERVISOR_PID"


class Supervisor:
    def __init__(self, settings: Settings, count: int, *, grace_s: float = 15.0) -> None:
        self.settings = settings
        self.count = count
        self.grace_s = grace_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        self.procs = [self._spawn(i) for i in range(self.count)]
        self._thread.start()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = child_env(self.settings)
        env[PARENT_ENV] = str(os.getpid())
        proc = subprocess.Popen([sys.executable, "-m", "limner", "worker"], env=env)
        log.info("started worker %d (pid %d)", index, proc.pid)
        return proc

    def _watch(self) -> None:
        backoff = [1.0] * self.count
        while not self._stop.wait(1.0):
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None or self._stop.is_set():
                    continue
                log.warning(
                    "worker %d (pid %d) exited with %s; restarting in %.0f s", index, proc.pid, code, backoff[index]
                )
                if self._stop.wait(backoff[index]):
                    return
                backoff[index] = min(backoff[index] * 2, 30.0)
                self.procs[index] = self._spawn(index)
                self.restarts += 1

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
    """In a worker that `limner serve` started: ask Linux to SIGTERM it when the supervisor
    dies, so a killed server leaves no orphan workers (they finish their batch and stop)."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != expected:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
