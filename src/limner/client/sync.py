"""The synchronous client for limner's HTTP API (the CLI uses it). Never imports torch.

from limner.client import Client

with Client("http://127.0.0.1:7860", api_key="lmk_…") as client:
    handle = client.submit("limner/tiny-sd", {"prompt": "a lighthouse"})
    print(handle.request_id)                      # known before any waiting
    result = handle.wait(timeout=120)             # an ImageResult
    print(result.images[0].url, result.images[0].width)
"""

from __future__ import annotations

import json
import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

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
from limner.client.training import training_archive

OnUpdate = Callable[[Status], None]


class RequestHandle:
    """A submitted job. ``request_id`` is known as soon as the submission returns."""

    def __init__(self, client: Client, model: str, body: dict[str, Any]) -> None:
        self.client = client
        self.model = model
        self.request_id: str = body["request_id"]
        self.status_url: str | None = body.get("status_url")
        self.response_url: str | None = body.get("response_url")
        self.cancel_url: str | None = body.get("cancel_url")

    def __repr__(self) -> str:
        return f"RequestHandle({self.model!r}, {self.request_id!r})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status_url": self.status_url,
            "response_url": self.response_url,
            "cancel_url": self.cancel_url,
        }

    def status(self, *, logs: bool = False) -> Status:
        return self.client.status(self.model, self.request_id, logs=logs)

    def iter_events(self, *, logs: bool = False, timeout: float | None = None) -> Iterator[Status]:
        return self.client.iter_events(self.model, self.request_id, logs=logs, timeout=timeout)

    def result(self) -> Result:
        return self.client.result(self.model, self.request_id)

    def wait(
        self, *, timeout: float | None = None, on_queue_update: OnUpdate | None = None, logs: bool = False
    ) -> Result:
        return self.client.wait(
            self.model, self.request_id, timeout=timeout, on_queue_update=on_queue_update, logs=logs
        )

    def cancel(self) -> str:
        return self.client.cancel(self.model, self.request_id)


class Client:
    """``base_url`` defaults to ``LIMNER_URL``, ``api_key`` to ``LIMNER_API_KEY``. ``timeout``
    bounds each HTTP call; ``retry`` how connection errors, 429 and 503 are retried."""

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
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={**auth_headers(api_key), **(headers or {})},
            verify=tls_verify(verify),
        )
        # Other hosts (presigned S3 URLs) are fetched without limner's key.
        self._plain = httpx.Client(timeout=self.timeout, verify=tls_verify(verify), follow_redirects=True)
        self.last_request_id: str | None = None

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the queue -------------------------------------------------------------------------

    def submit(
        self,
        model: str,
        arguments: dict[str, Any],
        *,
        priority: str | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        webhook_events: list[str] | str | None = None,
        start_deadline_s: float | None = None,
        result_ttl_s: float | None = None,
    ) -> RequestHandle:
        """Queue a job; returns once it is durable, with its request id."""
        headers, params = submit_request(
            arguments,
            priority=priority,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
            webhook_events=webhook_events,
            start_deadline_s=start_deadline_s,
            result_ttl_s=result_ttl_s,
        )
        body = self._json("POST", f"/v1/queue/{model}", json=arguments, headers=headers, params=params)
        handle = RequestHandle(self, model, body)
        self.last_request_id = handle.request_id
        return handle

    def handle(self, model: str, request_id: str) -> RequestHandle:
        """A handle for a job submitted earlier (by this process or another)."""
        return RequestHandle(self, model, {"request_id": request_id})

    def status(self, model: str, request_id: str, *, logs: bool = False) -> Status:
        params = {"logs": "1"} if logs else None
        return Status.of(self._json("GET", request_path(model, request_id, "/status"), params=params))

    def iter_events(
        self, model: str, request_id: str, *, logs: bool = False, timeout: float | None = None
    ) -> Iterator[Status]:
        """Status objects as they change (Server-Sent Events), ending with the terminal one.
        A broken stream is reopened (the job is safe in the store); ``timeout`` bounds the whole
        wait and raises RequestTimeout carrying the request id."""
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
                with connect_sse(self._http, "GET", path, params=params, timeout=read) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        raise error_from(source.response)
                    for event in source.iter_sse():
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
                time.sleep(self.retry.delay(attempt))
            except ApiError as exc:
                attempt += 1
                if not retryable(exc) or attempt >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt, exc.retry_after_s))

    def result(self, model: str, request_id: str) -> Result:
        """The typed result of a finished job; JobFailed if it failed or was canceled."""
        try:
            return parse_result(self._json("GET", request_path(model, request_id)), request_id)
        except ApiError as exc:
            if exc.error_type == "not_ready" or exc.status_code in (0, 404):
                raise
            raise JobFailed(exc.status_code, exc.message, exc.error_type, exc.detail, request_id=request_id) from None

    def wait(
        self,
        model: str,
        request_id: str,
        *,
        timeout: float | None = None,
        on_queue_update: OnUpdate | None = None,
        logs: bool = False,
    ) -> Result:
        """Follow the job to its end and return its result."""
        for status in self.iter_events(model, request_id, logs=logs, timeout=timeout):
            if on_queue_update is not None:
                on_queue_update(status)
        return self.result(model, request_id)

    def subscribe(
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
        """Submit, follow the events, return the result. The request id is known (``on_enqueue``,
        ``client.last_request_id``, and every error raised after the submission) before waiting."""
        handle = self.submit(model, arguments, **submit_options)
        if on_enqueue is not None:
            on_enqueue(handle.request_id)
        return handle.wait(timeout=timeout, on_queue_update=on_queue_update, logs=logs)

    def run(
        self, model: str, arguments: dict[str, Any], *, timeout: float | None = None, **submit_options: Any
    ) -> Result:
        """Submit and wait in one call (``POST /v1/run``). It carries an Idempotency-Key, so if
        the wait times out the same key finds the job: RequestTimeout names its request id."""
        headers, params = submit_request(arguments, **submit_options)
        wait = httpx.Timeout(self.timeout.connect, read=timeout, write=self.timeout.write, pool=self.timeout.pool)
        try:
            response = self._send(
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
            return self._recover(model, arguments, headers["Idempotency-Key"], timeout, exc)
        except httpx.TimeoutException as exc:
            return self._recover(model, arguments, headers["Idempotency-Key"], timeout, exc)
        request_id = response.headers.get("x-limner-request-id")
        self.last_request_id = request_id
        return parse_result(response.json(), request_id)

    def _recover(
        self, model: str, arguments: dict[str, Any], key: str, timeout: float | None, cause: Exception
    ) -> Result:
        """After a run timed out: the same Idempotency-Key returns the same job (never a new one)."""
        handle = self.submit(model, arguments, idempotency_key=key)
        if handle.status().done:
            return handle.result()
        raise RequestTimeout(
            f"request {handle.request_id} is still running after the client's timeout; "
            f"fetch it later with result({model!r}, {handle.request_id!r})",
            request_id=handle.request_id,
            timeout_s=timeout,
        ) from cause

    def cancel(self, model: str, request_id: str) -> str:
        """CANCELLATION_REQUESTED, or ALREADY_COMPLETED for a finished job."""
        response = self._send(self._http, "PUT", request_path(model, request_id, "/cancel"), allow=(400,))
        return str(response.json()["status"])

    # -- files -----------------------------------------------------------------------------

    def upload_file(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        purpose: str = "input",
    ) -> UploadedFile:
        """Upload an image or audio file (a path, bytes or a binary file); its ``url`` goes in
        any file field of any model."""
        name, data = read_upload(file, filename)
        files = {"file": (name, data, content_type or "application/octet-stream")}
        params = {"purpose": purpose} if purpose != "input" else None
        return UploadedFile.of(self._json("POST", "/v1/files", files=files, params=params))

    def download(self, url: str) -> bytes:
        """The bytes of a result file: this server's /v1/files URL or a presigned S3 URL."""
        http = self._http if same_origin(url, self.base_url) else self._plain
        response = self._send(http, "GET", url, follow_redirects=True)
        return response.content

    # -- LoRA training and LoRAs ------------------------------------------------------------

    def train(self, model: str, images: Any, **fields: Any) -> RequestHandle:
        """Queue a LoRA training job: ``images`` is a folder (with ``name.txt`` captions), a zip
        file, a list of image files, or a URL; the other fields are the task's (trigger_word,
        steps, rank, …). A folder or files are zipped and uploaded first."""
        archive = training_archive(images)
        if archive is not None:
            images = self.upload_file(archive, filename="images.zip", content_type="application/zip").url
        return self.submit(model, {"images": images, **fields})

    def loras(self, *, limit: int = 100) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/v1/loras", params={"limit": limit})["loras"]
        return found

    def lora(self, lora_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/loras/{lora_id}")

    def delete_lora(self, lora_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/loras/{lora_id}")

    def promote_lora(self, lora_id: str, step: int) -> dict[str, Any]:
        """Make checkpoint ``step`` of the LoRA's training be the LoRA (its revision goes up)."""
        return self._json("POST", f"/v1/loras/{lora_id}/promote", json={"step": step})

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

    # -- batches -----------------------------------------------------------------------------

    def create_batch(
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
            input_file = (self.upload_file(file, purpose="batch")).url
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
        return Batch.of(self._json("POST", "/v1/batches", json=body, headers=headers))

    def batch(self, batch_id: str) -> Batch:
        return Batch.of(self._json("GET", f"/v1/batches/{batch_id}"))

    def batches(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._json("GET", "/v1/batches", params=params)

    def cancel_batch(self, batch_id: str) -> Batch:
        return Batch.of(self._json("POST", f"/v1/batches/{batch_id}/cancel"))

    def retry_batch(self, batch_id: str) -> Batch:
        """A new batch of this one's failed and canceled rows."""
        return Batch.of(self._json("POST", f"/v1/batches/{batch_id}/retry"))

    def batch_output(self, batch_id: str, *, errors: bool = False) -> list[dict[str, Any]]:
        """The JSONL lines of the finished rows so far (or only the failed ones)."""
        response = self._request("GET", f"/v1/batches/{batch_id}/{'errors' if errors else 'output'}")
        return jsonl(response.text)

    def wait_batch(
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
            batch = self.batch(batch_id)
            if on_update is not None:
                on_update(batch)
            if batch.done:
                return batch
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} is still {batch.status} after {timeout:g} s")
            time.sleep(poll_s)

    # -- HTTP with retries -----------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._send(self._http, method, path, **kwargs)

    def _send(
        self,
        http: httpx.Client,
        method: str,
        url: str,
        *,
        allow: tuple[int, ...] = (),
        retry_timeouts: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call, retried on connection errors, 429 and 503 (``allow``: error statuses that
        are answers, not failures; ``retry_timeouts=False``: a timeout is the caller's to handle)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException) and not retry_timeouts:
                    raise
                error = connection_error(self.base_url, exc)
                if attempt >= self.retry.attempts:
                    raise error from exc
                time.sleep(self.retry.delay(attempt))
                continue
            if response.status_code < 400 or response.status_code in allow:
                return response
            error = error_from(response)
            if not retryable(error) or attempt >= self.retry.attempts:
                raise error
            time.sleep(self.retry.delay(attempt, error.retry_after_s))


def timed_out(request_id: str, timeout: float | None) -> RequestTimeout:
    return RequestTimeout(
        f"request {request_id} did not finish within {timeout:g} s; it goes on on the server: "
        "fetch its result later with the request id",
        request_id=request_id,
        timeout_s=timeout,
    )
