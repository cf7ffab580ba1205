"""The asynchronous client: the same calls as :class:`limner.client.Client`, awaitable.

async with AsyncClient("http://127.0.0.1:7860") as client:
    handle = await client.submit("limner/tiny-sd", {"prompt": "a lighthouse"})
    async for status in handle.iter_events():
        print(status.status, status.progress)
    result = await handle.result()
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from limner.client.errors import ApiError, JobFailed, RequestTimeout, error_from
from limner.client.models import Batch, Result, Status, UploadedFile, parse_result
from limner.client.protocol import (
    DEFAULT_URL,
    FileInput,
    RetryPolicy,
    auth_headers,
    batch_request,
    connection_error,
    jsonl,
    read_upload,
    request_path,
    retryable,
    same_origin,
    sse_timeout,
    submit_request,
    tls_verify,
)
from limner.client.sync import timed_out

# A callback may be a plain function or a coroutine function.
OnUpdate = Callable[[Status], None] | Callable[[Status], Awaitable[None]]


class AsyncRequestHandle:
    """A submitted job. ``request_id`` is known as soon as the submission returns."""

    def __init__(self, client: AsyncClient, model: str, body: dict[str, Any]) -> None:
        self.client = client
        self.model = model
        self.request_id: str = body["request_id"]
        self.status_url: str | None = body.get("status_url")
        self.response_url: str | None = body.get("response_url")
        self.cancel_url: str | None = body.get("cancel_url")

    def __repr__(self) -> str:
        return f"AsyncRequestHandle({self.model!r}, {self.request_id!r})"

    async def status(self, *, logs: bool = False) -> Status:
        return await self.client.status(self.model, self.request_id, logs=logs)

    def iter_events(self, *, logs: bool = False, timeout: float | None = None) -> AsyncIterator[Status]:
        return self.client.iter_events(self.model, self.request_id, logs=logs, timeout=timeout)

    async def result(self) -> Result:
        return await self.client.result(self.model, self.request_id)

    async def wait(
        self, *, timeout: float | None = None, on_queue_update: OnUpdate | None = None, logs: bool = False
    ) -> Result:
        return await self.client.wait(
            self.model, self.request_id, timeout=timeout, on_queue_update=on_queue_update, logs=logs
        )

    async def cancel(self) -> str:
        return await self.client.cancel(self.model, self.request_id)


class AsyncClient:
    """``base_url`` defaults to ``LIMNER_URL``, ``api_key`` to ``LIMNER_API_KEY``."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self.base_url = (base_url or os.environ.get("LIMNER_URL") or DEFAULT_URL).rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={**auth_headers(api_key), **(headers or {})},
            verify=tls_verify(verify),
        )
        self._plain = httpx.AsyncClient(timeout=self.timeout, verify=tls_verify(verify), follow_redirects=True)
        self.last_request_id: str | None = None

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._plain.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- the queue -------------------------------------------------------------------------

    async def submit(self, model: str, arguments: dict[str, Any], **options: Any) -> AsyncRequestHandle:
        """Queue a job (options as :meth:`Client.submit`); returns once it is durable."""
        headers, params = submit_request(arguments, **options)
        body = await self._json("POST", f"/v1/queue/{model}", json=arguments, headers=headers, params=params)
        handle = AsyncRequestHandle(self, model, body)
        self.last_request_id = handle.request_id
        return handle

    def handle(self, model: str, request_id: str) -> AsyncRequestHandle:
        return AsyncRequestHandle(self, model, {"request_id": request_id})

    async def status(self, model: str, request_id: str, *, logs: bool = False) -> Status:
        params = {"logs": "1"} if logs else None
        return Status.of(await self._json("GET", request_path(model, request_id, "/status"), params=params))

    async def iter_events(
        self, model: str, request_id: str, *, logs: bool = False, timeout: float | None = None
    ) -> AsyncIterator[Status]:
        """Status objects as they change, the terminal one last (a broken stream is reopened)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        params = {"logs": "1"} if logs else None
        attempt = 0
        while True:
            read = sse_timeout(self.timeout)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise timed_out(request_id, timeout)
                read = httpx.Timeout(read.connect, read=min(remaining, read.read or remaining))
            try:
                path = request_path(model, request_id, "/status/stream")
                async with aconnect_sse(self._http, "GET", path, params=params, timeout=read) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        raise error_from(source.response)
                    async for event in source.aiter_sse():
                        if not event.data:
                            continue
                        attempt = 0
                        status = Status.of(json.loads(event.data))
                        yield status
                        if status.done:
                            return
                        if deadline is not None and time.monotonic() >= deadline:
                            raise timed_out(request_id, timeout)
            except httpx.TransportError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise timed_out(request_id, timeout) from exc
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise connection_error(self.base_url, exc) from exc
                await asyncio.sleep(self.retry.delay(attempt))
            except ApiError as exc:
                attempt += 1
                if not retryable(exc) or attempt >= self.retry.attempts:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, exc.retry_after_s))

    async def result(self, model: str, request_id: str) -> Result:
        try:
            return parse_result(await self._json("GET", request_path(model, request_id)), request_id)
        except ApiError as exc:
            if exc.error_type == "not_ready" or exc.status_code in (0, 404):
                raise
            raise JobFailed(exc.status_code, exc.message, exc.error_type, exc.detail, request_id=request_id) from None

    async def wait(
        self,
        model: str,
        request_id: str,
        *,
        timeout: float | None = None,
        on_queue_update: OnUpdate | None = None,
        logs: bool = False,
    ) -> Result:
        async for status in self.iter_events(model, request_id, logs=logs, timeout=timeout):
            if on_queue_update is not None:
                outcome = on_queue_update(status)
                if inspect.isawaitable(outcome):
                    await outcome
        return await self.result(model, request_id)

    async def subscribe(
        self,
        model: str,
        arguments: dict[str, Any],
        *,
        on_queue_update: OnUpdate | None = None,
        on_enqueue: Callable[[str], None] | None = None,
        timeout: float | None = None,
        logs: bool = False,
        **submit_options: Any,
    ) -> Result:
        """Submit, follow the events, return the result; the request id is known before waiting."""
        handle = await self.submit(model, arguments, **submit_options)
        if on_enqueue is not None:
            on_enqueue(handle.request_id)
        return await handle.wait(timeout=timeout, on_queue_update=on_queue_update, logs=logs)

    async def run(
        self, model: str, arguments: dict[str, Any], *, timeout: float | None = None, **submit_options: Any
    ) -> Result:
        """``POST /v1/run`` with an Idempotency-Key; on a timeout the key finds the job again."""
        headers, params = submit_request(arguments, **submit_options)
        wait = httpx.Timeout(self.timeout.connect, read=timeout, write=self.timeout.write, pool=self.timeout.pool)
        key = headers["Idempotency-Key"]
        try:
            response = await self._send(
                self._http,
                "POST",
                f"/v1/run/{model}",
                json=arguments,
                headers=headers,
                params=params,
                timeout=wait,
                retry_timeouts=False,
            )
        except ApiError as exc:
            if exc.error_type not in ("timeout", "connection_error") or exc.request_id:
                raise
            return await self._recover(model, arguments, key, timeout, exc)
        except httpx.TimeoutException as exc:
            return await self._recover(model, arguments, key, timeout, exc)
        request_id = response.headers.get("x-limner-request-id")
        self.last_request_id = request_id
        return parse_result(response.json(), request_id)

    async def _recover(
        self, model: str, arguments: dict[str, Any], key: str, timeout: float | None, cause: Exception
    ) -> Result:
        handle = await self.submit(model, arguments, idempotency_key=key)
        if (await handle.status()).done:
            return await handle.result()
        raise RequestTimeout(
            f"request {handle.request_id} is still running after the client's timeout; "
            f"fetch it later with result({model!r}, {handle.request_id!r})",
            request_id=handle.request_id,
            timeout_s=timeout,
        ) from cause

    async def cancel(self, model: str, request_id: str) -> str:
        response = await self._send(self._http, "PUT", request_path(model, request_id, "/cancel"), allow=(400,))
        return str(response.json()["status"])

    # -- files -----------------------------------------------------------------------------

    async def upload_file(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        purpose: str = "input",
    ) -> UploadedFile:
        name, data = await asyncio.to_thread(read_upload, file, filename)
        files = {"file": (name, data, content_type or "application/octet-stream")}
        params = {"purpose": purpose} if purpose != "input" else None
        return UploadedFile.of(await self._json("POST", "/v1/files", files=files, params=params))

    async def download(self, url: str) -> bytes:
        http = self._http if same_origin(url, self.base_url) else self._plain
        response = await self._send(http, "GET", url, follow_redirects=True)
        return response.content

    async def models(self, task: str | None = None) -> list[dict[str, Any]]:
        body = await self._json("GET", "/v1/models", params={"task": task} if task else None)
        models: list[dict[str, Any]] = body["models"]
        return models

    # -- HTTP with retries -----------------------------------------------------------------

    # -- batches -----------------------------------------------------------------------------

    async def create_batch(
        self,
        model: str,
        rows: list[dict[str, Any]] | None = None,
        *,
        file: FileInput | None = None,
        input_file: str | None = None,
        template: dict[str, str] | None = None,
        max_concurrency: int | None = None,
        priority: str = "low",
        metadata: dict[str, str] | None = None,
        result_ttl_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """A model or workflow over many rows: ``rows`` (inputs, or ``{custom_id, input}``),
        a local JSONL/CSV ``file`` (uploaded first) or an ``input_file`` URL. Retried safely:
        the request carries an Idempotency-Key."""
        if file is not None:
            input_file = (await self.upload_file(file, purpose="batch")).url
        body = batch_request(
            model,
            rows,
            input_file,
            template=template,
            max_concurrency=max_concurrency,
            priority=priority,
            metadata=metadata,
            result_ttl_s=result_ttl_s,
        )
        headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
        return Batch.of(await self._json("POST", "/v1/batches", json=body, headers=headers))

    async def batch(self, batch_id: str) -> Batch:
        return Batch.of(await self._json("GET", f"/v1/batches/{batch_id}"))

    async def batches(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self._json("GET", "/v1/batches", params=params)

    async def cancel_batch(self, batch_id: str) -> Batch:
        return Batch.of(await self._json("POST", f"/v1/batches/{batch_id}/cancel"))

    async def retry_batch(self, batch_id: str) -> Batch:
        """A new batch of this one's failed and canceled rows."""
        return Batch.of(await self._json("POST", f"/v1/batches/{batch_id}/retry"))

    async def batch_output(self, batch_id: str, *, errors: bool = False) -> list[dict[str, Any]]:
        """The JSONL lines of the finished rows so far (or only the failed ones)."""
        path = f"/v1/batches/{batch_id}/{'errors' if errors else 'output'}"
        response = await self._send(self._http, "GET", path)
        return jsonl(response.text)

    async def wait_batch(
        self,
        batch_id: str,
        *,
        on_update: Callable[[Batch], Any] | None = None,
        poll_s: float = 1.0,
        timeout: float | None = None,
    ) -> Batch:
        """Poll until the batch ends (completed, cancelled or failed); ``on_update`` sees each poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = await self.batch(batch_id)
            if on_update is not None:
                outcome = on_update(batch)
                if inspect.isawaitable(outcome):
                    await outcome
            if batch.done:
                return batch
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} is still {batch.status} after {timeout:g} s")
            await asyncio.sleep(poll_s)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = (await self._send(self._http, method, path, **kwargs)).json()
        return body

    async def _send(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        allow: tuple[int, ...] = (),
        retry_timeouts: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and not retry_timeouts:
                    raise
                error = connection_error(self.base_url, exc)
                if attempt >= self.retry.attempts:
                    raise error from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code < 400 or response.status_code in allow:
                return response
            error = error_from(response)
            if not retryable(error) or attempt >= self.retry.attempts:
                raise error
            await asyncio.sleep(self.retry.delay(attempt, error.retry_after_s))
