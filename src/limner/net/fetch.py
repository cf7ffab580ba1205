"""Fetching a client-given URL under the guard: pinned address, no redirects, bounded bytes and time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from limner import __version__
from limner.net.guard import AllowList, Resolver, parse_allow_list, resolve_target, shown, system_resolver


class FetchFailed(Exception):
    """The URL was allowed but did not give a usable answer; the message says why."""


class TooLarge(FetchFailed):
    """The body is over the byte limit (stopped reading there)."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class FetchPolicy:
    """The operator's rules for fetching client-given URLs (allow-list and time limit)."""

    allow: AllowList
    timeout_s: float
    resolver: Resolver = system_resolver

    @classmethod
    def create(cls, allow_hosts: tuple[str, ...], timeout_s: float) -> FetchPolicy:
        return cls(parse_allow_list(allow_hosts), timeout_s)

    def fetch(self, url: str, max_bytes: int) -> Fetched:
        return fetch(url, allow=self.allow, max_bytes=max_bytes, timeout_s=self.timeout_s, resolver=self.resolver)


def fetch(
    url: str,
    *,
    allow: AllowList,
    max_bytes: int,
    timeout_s: float,
    resolver: Resolver = system_resolver,
) -> Fetched:
    """GET ``url`` into memory. Raises ``guard.Refused`` for a URL limner will not reach,
    TooLarge past ``max_bytes``, and FetchFailed for anything else that went wrong."""
    target = resolve_target(url, allow, resolver)
    deadline = time.monotonic() + timeout_s
    # trust_env=False: a proxy from the environment would connect by name and undo the pinning.
    # The CA bundle still follows SSL_CERT_FILE / SSL_CERT_DIR, as it would with trust_env.
    verify = httpx.create_ssl_context(trust_env=True)
    with httpx.Client(
        timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False, verify=verify
    ) as client:
        request = target.request(
            client,
            "GET",
            # identity: a compressed body would expand past the limit before we could count it.
            headers={"Accept": "*/*", "Accept-Encoding": "identity", "User-Agent": f"limner/{__version__}"},
        )
        try:
            response = client.send(request, stream=True)
            try:
                _check_response(url, response, max_bytes)
                data = _read_bounded(url, response, max_bytes, deadline, timeout_s)
            finally:
                response.close()
            return Fetched(data=data, content_type=response.headers.get("content-type"))
        except httpx.TimeoutException:
            raise FetchFailed(f"{shown(url)} did not answer within {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"could not fetch {shown(url)} ({type(exc).__name__}: {exc})") from None


def _check_response(url: str, response: httpx.Response, max_bytes: int) -> None:
    if response.is_redirect or 300 <= response.status_code < 400:
        location = response.headers.get("location", "")
        raise FetchFailed(
            f"{shown(url)} answered {response.status_code}, a redirect to {shown(location, 120) or '?'}; "
            "limner does not follow redirects for file inputs: give the final URL"
        )
    if response.status_code != 200:
        raise FetchFailed(f"{shown(url)} answered HTTP {response.status_code}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchFailed(f"{shown(url)} sent a {encoding}-encoded body; limner takes uncompressed files only")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise TooLarge(f"{shown(url)} is {int(length)} bytes")


def _read_bounded(url: str, response: httpx.Response, max_bytes: int, deadline: float, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_raw():
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"{shown(url)} is more than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchFailed(f"{shown(url)} took longer than {timeout_s:g} s to send")
        chunks.append(chunk)
    return b"".join(chunks)
