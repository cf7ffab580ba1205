"""What the hosted-provider families share: the key, the HTTP client, errors, and outputs.

- The key comes from the environment variable the entry names (``runtime.api_key_env``) and
  is read when the model is "loaded"; it is only ever sent to the host of the entry's
  ``source``. A URL the provider answers with (status, result, cancel) on any other host is
  refused, so the key cannot be walked off to a third party.
- Every message made from a provider's answer goes through ``scrub``: a provider that echoes
  the key back (in an error body, say) never gets it into a result, a log or an error.
- Output files the provider names by URL are downloaded under the SSRF guard
  (``limner.net.fetch``) and stored in limner's storage by the worker, so results outlive the
  provider's URLs. The provider's own host is allowed because the operator named it in the
  catalog; any other host must be public (or in ``LIMNER_FETCH_ALLOW_HOSTS``).
- HTTP answers map onto the one error hierarchy: 400/422 are the caller's (InvalidInput, never
  retried elsewhere), 401/403 make the model unavailable, 429 is ``overloaded`` (with the
  provider's Retry-After), 5xx and broken connections are ``server_error``, a timeout is
  ``timeout``.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from limner import __version__
from limner.adapters.base import WorkItem
from limner.catalog.entry import CatalogEntry
from limner.errors import (
    InvalidInput,
    JobTimeout,
    LimnerError,
    ModelUnavailable,
    ProviderError,
    ProviderOverloaded,
)
from limner.media.images import MediaFile
from limner.media.sniff import sniff
from limner.net.fetch import FetchFailed, fetch
from limner.net.guard import AllowList, Refused, parse_allow_list

REDACTED = "[redacted]"
# The largest output file limner copies from a provider.
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "model/gltf-binary": "glb",
}


def scrub(text: str, secret: str) -> str:
    """``text`` without the secret (and without what looks like an auth header value)."""
    if secret:
        text = text.replace(secret, REDACTED)
    return re.sub(r"(?i)(authorization|key|bearer)([\"':= ]+)[A-Za-z0-9._\-:]{12,}", rf"\1\2{REDACTED}", text)


@dataclass
class Provider:
    """One entry's provider: where it is, its key, and an HTTP client to it."""

    entry_id: str
    source: str
    key: str
    auth_scheme: str  # "Key" (fal) or "Bearer" (OpenAI)
    timeout_s: float
    client: httpx.Client = field(repr=False)
    files: AllowList = field(default_factory=AllowList)

    @classmethod
    def open(cls, entry: CatalogEntry, auth_scheme: str, *, timeout_s: float = 60.0) -> Provider:
        name = entry.runtime.api_key_env or ""
        key = os.environ.get(name, "")
        if not key:
            raise ModelUnavailable(f"{entry.id}: the provider key is not set (environment variable {name})")
        # The CA bundle follows SSL_CERT_FILE / SSL_CERT_DIR; no proxy from the environment
        # (trust_env=False) and no redirects: the key goes to the catalog's host and nowhere else.
        client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            follow_redirects=False,
            trust_env=False,
            verify=httpx.create_ssl_context(trust_env=True),
            headers={"User-Agent": f"limner/{__version__}"},
        )
        host = httpx.URL(entry.source).host
        return cls(entry.id, entry.source, key, auth_scheme, timeout_s, client, files=_allow(host))

    def close(self) -> None:
        self.client.close()

    def same_host(self, url: str) -> bool:
        mine, theirs = httpx.URL(self.source), httpx.URL(url)
        return (mine.scheme, mine.host, mine.port) == (theirs.scheme, theirs.host, theirs.port)

    def call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """One authenticated call to the provider (a JSON body, or a multipart form of ``data``
        and ``files``); its JSON answer, or the mapped error."""
        if not self.same_host(url):
            raise ProviderError(f"{self.entry_id}: the provider pointed at another host ({httpx.URL(url).host})")
        headers = {"Authorization": f"{self.auth_scheme} {self.key}", "Accept": "application/json"}
        try:
            response = self.client.request(
                method, url, json=json, params=params, data=data, files=files, headers=headers
            )
        except httpx.TimeoutException:
            raise JobTimeout(f"{self.entry_id}: the provider did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            message = scrub(f"{type(exc).__name__}: {exc}", self.key)
            raise ProviderError(f"{self.entry_id}: could not reach the provider ({message})") from None
        if response.status_code >= 400:
            raise self.error(response)
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"{self.entry_id}: the provider answered {response.status_code} without JSON") from None

    @contextmanager
    def stream(self, url: str, *, json: Any) -> Iterator[Iterator[str]]:
        """An authenticated POST whose answer is read as it comes: its lines (server-sent
        events). Leaving the block closes the connection, which is how a streaming call is
        canceled (OpenAI's API has no cancel route)."""
        if not self.same_host(url):
            raise ProviderError(f"{self.entry_id}: the provider pointed at another host ({httpx.URL(url).host})")
        headers = {"Authorization": f"{self.auth_scheme} {self.key}", "Accept": "text/event-stream"}
        try:
            with self.client.stream("POST", url, json=json, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self.error(response)
                yield self._lines(response)
        except httpx.TimeoutException:
            raise JobTimeout(f"{self.entry_id}: the provider did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            message = scrub(f"{type(exc).__name__}: {exc}", self.key)
            raise ProviderError(f"{self.entry_id}: the provider's stream broke ({message})") from None

    def _lines(self, response: httpx.Response) -> Iterator[str]:
        yield from response.iter_lines()

    def error(self, response: httpx.Response) -> LimnerError:
        status = response.status_code
        said = scrub(_said(response), self.key)
        where = f"{self.entry_id}: the provider answered {status}"
        if status in (400, 422):
            return InvalidInput(f"{where}: {said}", loc=("body",))
        if status in (401, 403):
            return ModelUnavailable(f"{where} (the key was refused): {said}")
        if status == 429:
            overloaded = ProviderOverloaded(f"{where} (too many requests): {said}")
            overloaded.retry_after_s = _retry_after(response.headers.get("retry-after"))
            return overloaded
        if status in (404, 410):
            return ModelUnavailable(f"{where}: {said}")
        return ProviderError(f"{where}: {said}")

    def download(self, url: str) -> tuple[bytes, str | None]:
        """A provider's output file: a data URI, or a URL fetched under the SSRF guard."""
        if url.startswith("data:"):
            return _data_uri(url, self.entry_id)
        try:
            got = fetch(url, allow=self.files, max_bytes=MAX_OUTPUT_BYTES, timeout_s=self.timeout_s)
        except (Refused, FetchFailed) as exc:
            why = scrub(str(exc), self.key)
            raise ProviderError(f"{self.entry_id}: could not copy an output file: {why}") from None
        return got.data, got.content_type


def media_file(data: bytes, content_type: str | None, entry_id: str) -> MediaFile:
    """An output file as limner stores it: images are checked (and measured) with Pillow."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not kind or kind == "application/octet-stream" or kind.startswith("image/"):
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = (image.format or "png").lower()
                size = image.size
        except (UnidentifiedImageError, OSError):
            if kind.startswith("image/"):
                raise ProviderError(f"{entry_id}: the provider sent an image that does not decode") from None
        else:
            kind = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, "image/png")
            return MediaFile(data, kind, EXTENSIONS[kind], {"width": size[0], "height": size[1]})
    extension = EXTENSIONS.get(kind)
    if extension is None:
        raise ProviderError(f"{entry_id}: the provider sent a file of an unknown type ({kind or 'none'})")
    return MediaFile(data, kind, extension)


def request_body(fields: dict[str, Any], call_args: dict[str, Any]) -> dict[str, Any]:
    """The provider's request: the job's input fields that are set, plus the entry's fixed
    ``call_args`` (provider-specific arguments)."""
    return {**{k: v for k, v in fields.items() if v is not None}, **call_args}


def input_fields(item: WorkItem[Any]) -> dict[str, Any]:
    """The job's input as JSON, its files inlined as data URIs: the provider cannot read
    limner's ``storage://`` references, and a data URI is what fal and limner both take for a
    file field (no upload step, no URL of ours the provider must be able to reach)."""
    fields: dict[str, Any] = item.input.model_dump(mode="json")
    for name in item.input.file_fields:
        if fields.get(name) is not None:
            fields[name] = data_uri(item.files[name], name)
    return fields


def data_uri(data: bytes, name: str) -> str:
    kind = sniff(data, name).content_type
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _allow(host: str) -> AllowList:
    try:
        address = ip_address(host.strip("[]"))
    except ValueError:
        return parse_allow_list([host])
    return AllowList(networks=(ip_network(address),))


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if isinstance(value, list) and value and isinstance(value[0], dict):
                value = value[0].get("msg") or value[0]
            if value:
                return str(value)[:300]
    return str(body)[:300]


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _data_uri(url: str, entry_id: str) -> tuple[bytes, str | None]:
    head, _, payload = url.partition(",")
    kind = head.removeprefix("data:").split(";")[0] or None
    try:
        return base64.b64decode(payload, validate=True), kind
    except (binascii.Error, ValueError):
        raise ProviderError(f"{entry_id}: the provider sent a data URI that does not decode") from None


def file_urls(value: Any) -> Iterable[tuple[str, str | None]]:
    """(url, content type) of each file in a provider's output value: a file object, or a list."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            yield item["url"], item.get("content_type")
        elif isinstance(item, str):
            yield item, None
