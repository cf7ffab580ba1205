"""A synchronous client for the limner HTTP API (what the CLI uses). Never imports torch."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from limner.client.errors import ApiError, raise_for_status

TERMINAL = "COMPLETED"


class Client:
    def __init__(
        self, base_url: str = "http://127.0.0.1:7860", *, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers or {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the queue -------------------------------------------------------------------------

    def submit(
        self, model: str, arguments: dict[str, Any], *, priority: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Queue a job; returns ``{request_id, status_url, response_url, cancel_url}``."""
        headers = {}
        if priority:
            headers["X-Limner-Priority"] = priority
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self._json("POST", f"/v1/queue/{model}", json=arguments, headers=headers)

    def status(self, model: str, request_id: str, *, logs: bool = False) -> dict[str, Any]:
        params = {"logs": "1"} if logs else None
        return self._json("GET", f"/v1/queue/{model}/requests/{request_id}/status", params=params)

    def iter_events(self, model: str, request_id: str, *, logs: bool = False) -> Iterator[dict[str, Any]]:
        """Status objects as they change, ending with the terminal one (Server-Sent Events)."""
        url = f"/v1/queue/{model}/requests/{request_id}/status/stream"
        params = {"logs": "1"} if logs else None
        with connect_sse(self._http, "GET", url, params=params, timeout=httpx.Timeout(30.0, read=None)) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise_for_status(source.response)
            for event in source.iter_sse():
                if not event.data:
                    continue
                body: dict[str, Any] = json.loads(event.data)
                yield body
                if body.get("status") == TERMINAL:
                    return

    def result(self, model: str, request_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/queue/{model}/requests/{request_id}")

    def cancel(self, model: str, request_id: str) -> str:
        response = self._http.put(f"/v1/queue/{model}/requests/{request_id}/cancel")
        if response.status_code == 400:
            status: str = response.json().get("status", "ALREADY_COMPLETED")
            return status
        raise_for_status(response)
        outcome: str = response.json()["status"]
        return outcome

    def subscribe(
        self,
        model: str,
        arguments: dict[str, Any],
        *,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        **submit_kwargs: Any,
    ) -> dict[str, Any]:
        """Submit, follow the events, and return the result (raises ApiError if the job failed)."""
        handle = self.submit(model, arguments, **submit_kwargs)
        return self.wait(model, handle["request_id"], on_update=on_update)

    def wait(
        self, model: str, request_id: str, *, on_update: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        try:
            for event in self.iter_events(model, request_id):
                if on_update:
                    on_update(event)
        except httpx.TransportError:
            # The stream broke: fall back to polling, the job is safe in the store.
            while self.status(model, request_id).get("status") != TERMINAL:
                time.sleep(0.5)
        return self.result(model, request_id)

    # -- catalog and jobs ------------------------------------------------------------------

    def models(self, task: str | None = None) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = self._json("GET", "/v1/models", params={"task": task} if task else None)[
            "models"
        ]
        return models

    def model(self, model: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/models/{model}")

    def requests(
        self, *, status: str | None = None, model: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in {"status": status, "model": model, "limit": limit, "cursor": cursor}.items() if v}
        return self._json("GET", "/v1/requests", params=params)

    def download(self, url: str) -> bytes:
        response = self._http.get(url)
        raise_for_status(response)
        return response.content

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach limner at {self.base_url}: {exc}", "connection_error") from exc
        raise_for_status(response)
        body: dict[str, Any] = response.json()
        return body
