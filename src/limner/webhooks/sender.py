"""The webhook dispatcher: sends due outbox messages, signed, under the SSRF guard, with retries.

It runs in each API process (a thread, plus a small pool for the HTTP calls). All of its
state is in the store, so a restart loses nothing: a message whose attempt was cut short is
claimed again once its lease expires, and one waiting for a retry keeps its time.

Per attempt: the URL is checked and resolved once by ``limner.net.guard`` (loopback, private,
link-local, metadata and IPv4-mapped addresses are refused unless
``LIMNER_WEBHOOK_ALLOW_HOSTS`` allows them), the connection goes to that pinned address, and
redirects are not followed (a 3xx is a failed attempt, as the spec advises). A 2xx delivers;
410 Gone stops this message and the job's other waiting ones; anything else is retried on the
schedule (``LIMNER_WEBHOOK_RETRY_SCHEDULE``, with jitter), waiting at least as long as a
``Retry-After`` header asks, until the schedule runs out. Progress messages get one attempt:
a newer one supersedes them anyway.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from limner import __version__
from limner.net.guard import AllowList, Refused, Resolver, resolve_target, system_resolver
from limner.store.deliveries import Attempt, Deliveries, Delivery
from limner.store.outbox import PROGRESS
from limner.webhooks.signing import Signer

log = logging.getLogger("limner.webhooks")
ALLOW_SETTING = "LIMNER_WEBHOOK_ALLOW_HOSTS"
MAX_RETRY_AFTER_S = 86400.0
EXCERPT_BYTES = 512


@dataclass(frozen=True)
class RetryPolicy:
    """``schedule[i]`` is the wait before attempt ``i + 1`` (the first is sent at once)."""

    schedule: tuple[float, ...]
    jitter: float = 0.1

    def next_delay(self, tries_done: int, retry_after: float | None) -> float | None:
        """Seconds until the next attempt after ``tries_done`` failed ones, or None: give up."""
        if tries_done >= len(self.schedule):
            return None
        delay = self.schedule[tries_done] * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class SenderConfig:
    signer: Signer
    allow: AllowList
    policy: RetryPolicy
    timeout_s: float
    poll_s: float
    concurrency: int
    resolver: Resolver = system_resolver


class WebhookSender:
    def __init__(
        self, deliveries: Deliveries, config: SenderConfig, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        self.deliveries = deliveries
        self.config = config
        self.render = render
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease_s = config.timeout_s + 15.0
        self.sent = 0
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        # One TLS context for every attempt: building one reads the CA bundle. It follows
        # SSL_CERT_FILE / SSL_CERT_DIR; proxies from the environment stay off (they would
        # connect by name and undo the pinning).
        self._verify = httpx.create_ssl_context(trust_env=True)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="limner-webhook")
        self._thread = threading.Thread(target=self._loop, name="limner-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; attempts in flight are abandoned to their lease (sent again later)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.run_once()
            except Exception as exc:  # the store is down: keep trying, never die
                log.warning("webhook dispatcher: %s: %s", type(exc).__name__, exc)
                claimed = 0
            if not claimed:
                self._stop.wait(self.config.poll_s)

    def run_once(self) -> int:
        """Claim what is due (up to the free slots) and hand it to the pool; returns how many."""
        if not self.deliveries.has_due():
            return 0
        free = 0
        if self._slots.acquire(timeout=self.config.poll_s):  # wait for one free slot, then take what is free
            free = 1
            while free < self.config.concurrency and self._slots.acquire(blocking=False):
                free += 1
        if not free:
            return 0
        try:
            claimed = self.deliveries.claim(self.id, free, self.lease_s)
        except Exception:
            for _ in range(free):
                self._slots.release()
            raise
        for _ in range(free - len(claimed)):
            self._slots.release()
        for delivery in claimed:
            assert self._pool is not None
            self._pool.submit(self._deliver_and_release, delivery)
        return len(claimed)

    def _deliver_and_release(self, delivery: Delivery) -> None:
        try:
            self.deliver(delivery)
        except Exception:
            log.exception("webhook %s: the attempt failed unexpectedly", delivery.id)
        finally:
            self._slots.release()

    # -- one attempt -----------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> Attempt:
        """Make one attempt and record it (the message must be claimed by this dispatcher)."""
        attempt = self.attempt(delivery)
        self.deliveries.record(self.id, attempt, self.id)
        if attempt.outcome == "delivered":
            self.sent += 1
        else:
            log.info(
                "webhook %s (%s of %s) attempt %d: %s -> %s",
                delivery.id,
                delivery.event,
                delivery.job_id,
                attempt.attempt,
                attempt.status_code or attempt.error,
                attempt.outcome,
            )
        return attempt

    def attempt(self, delivery: Delivery) -> Attempt:
        started = time.time()
        clock = time.monotonic()
        body = json.dumps(self.render(delivery.payload), separators=(",", ":"), ensure_ascii=False)
        headers = {
            **self.config.signer.headers(delivery.id, int(started), body),
            "content-type": "application/json",
            "user-agent": f"limner/{__version__}",
        }
        status: int | None = None
        error: str | None = None
        excerpt: str | None = None
        retry_after: float | None = None
        try:
            target = resolve_target(
                delivery.url,
                self.config.allow,
                self.config.resolver,
                setting=ALLOW_SETTING,
                action="send webhooks to",
            )
            with httpx.Client(
                timeout=httpx.Timeout(self.config.timeout_s),
                follow_redirects=False,
                trust_env=False,
                verify=self._verify,
            ) as client:
                request = target.request(client, "POST", content=body.encode(), headers=headers)
                response = client.send(request, stream=True)
                try:
                    status = response.status_code
                    excerpt = _read_excerpt(response)
                    retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
                finally:
                    response.close()
        except Refused as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException:
            error = f"no answer within {self.config.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        outcome, retry_at = self._outcome(delivery, status, retry_after, started)
        return Attempt(
            delivery_id=delivery.id,
            job_id=delivery.job_id,
            attempt=delivery.attempts + 1,
            started_at=started,
            duration_ms=round((time.monotonic() - clock) * 1000, 2),
            status_code=status,
            error=error,
            response_excerpt=excerpt,
            outcome=outcome,
            retry_at=retry_at,
        )

    def _outcome(
        self, delivery: Delivery, status: int | None, retry_after: float | None, started: float
    ) -> tuple[str, float | None]:
        if status is not None and 200 <= status < 300:
            return "delivered", None
        if status == 410:
            return "gone", None
        if delivery.event == PROGRESS:
            return "failed", None
        delay = self.config.policy.next_delay(delivery.tries + 1, retry_after)
        if delay is None:
            return "failed", None
        return "retry", started + delay


def _read_excerpt(response: httpx.Response) -> str:
    data = b""
    for chunk in response.iter_raw():
        data += chunk
        if len(data) >= EXCERPT_BYTES:
            break
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace")
