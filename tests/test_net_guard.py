"""The SSRF guard and the guarded fetcher, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from limner.api.tenancy import OPEN
from limner.catalog import load_catalog
from limner.catalog.inputs import parse_input
from limner.errors import InvalidInput, LimitExceeded
from limner.intake.files import store_file_inputs
from limner.net.fetch import FetchFailed, FetchPolicy, TooLarge, fetch
from limner.net.guard import AllowList, IPAddress, Refused, classify, parse_allow_list, resolve_target
from limner.settings import Settings
from limner.storage import LocalStorage
from limner.storage.base import key_of

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # bytes only: the fetcher does not look inside


def real_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (80, 48), (200, 30, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


REAL_PNG = real_png()

# address -> the start of the reason it is refused (None: public, allowed).
ADDRESSES = [
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),  # mapped form of a public address: fine
    ("64:ff9b::808:808", None),  # NAT64 of a public address: fine
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.9", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.0.0.5", "a private address"),
    ("172.16.3.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.169.254", "a link-local address (the cloud metadata service)"),
    ("fd00:ec2::254", "a private address (the cloud metadata service)"),
    ("169.254.10.10", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT"),
    ("100.100.100.200", "a carrier-grade NAT"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("240.0.0.1", "a reserved address"),
    ("192.0.2.1", "a non-public address"),
    ("::ffff:127.0.0.1", "a loopback address in IPv6 form (127.0.0.1)"),
    ("::ffff:169.254.169.254", "a link-local address (the cloud metadata service) in IPv6 form"),
    ("::ffff:0:a00:5", "a private address in IPv6 form (10.0.0.5)"),  # IPv4-translated
    ("64:ff9b::a00:5", "a private address in IPv6 form (10.0.0.5)"),  # NAT64
    ("::127.0.0.1", "a loopback address in IPv6 form"),  # IPv4-compatible
    ("2002:7f00:1::", "a loopback address in IPv6 form"),  # 6to4
    ("64:ff9b:1::1", "a local-use NAT64 address"),
    ("fec0::1", "a site-local address"),
]


@pytest.mark.parametrize(("address", "reason"), ADDRESSES)
def test_classification(address: str, reason: str | None) -> None:
    found = classify(ip_address(address))
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason), found


def test_allow_list_parses_hosts_and_cidrs() -> None:
    allow = parse_allow_list(["Images.Internal", " 10.0.0.0/8", "[::1]", "192.168.1.7", ""])
    assert allow.allows_host("images.internal") and allow.allows_host("IMAGES.internal.")
    assert not allow.allows_host("other.internal")
    assert allow.allows_address(ip_address("10.200.0.1")) and allow.allows_address(ip_address("::1"))
    assert allow.allows_address(ip_address("192.168.1.7")) and not allow.allows_address(ip_address("192.168.1.8"))
    with pytest.raises(ValueError, match="neither a host name nor an address"):
        parse_allow_list(["http://bad/"])


def test_settings_take_the_allow_list_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMNER_FETCH_ALLOW_HOSTS", "cdn.internal, 10.1.0.0/16")
    settings = Settings()
    assert settings.fetch_allow_hosts == ("cdn.internal", "10.1.0.0/16")
    assert settings.to_env()["LIMNER_FETCH_ALLOW_HOSTS"] == "cdn.internal,10.1.0.0/16"
    with pytest.raises(ValidationError, match="neither a host name"):
        Settings(fetch_allow_hosts="ok.example, bad/host")


def resolver_of(table: dict[str, list[str]]) -> tuple[list[str], object]:
    calls: list[str] = []

    def resolve(host: str, _port: int) -> list[IPAddress]:
        calls.append(host)
        return [ip_address(a) for a in table[host]]

    return calls, resolve


def test_every_resolved_address_must_be_public() -> None:
    _, resolve = resolver_of({"mixed.example": ["93.184.215.14", "10.0.0.5"], "good.example": ["93.184.215.14"]})
    with pytest.raises(Refused, match=r"resolves to 10\.0\.0\.5, a private address.*LIMNER_FETCH_ALLOW_HOSTS"):
        resolve_target("https://mixed.example/a.png", AllowList(), resolve)  # type: ignore[arg-type]
    target = resolve_target("https://good.example/a.png", AllowList(), resolve)  # type: ignore[arg-type]
    assert str(target.address) == "93.184.215.14" and target.host == "good.example"
    # The operator may allow the name, or the address.
    assert resolve_target("https://mixed.example/", parse_allow_list(["mixed.example"]), resolve)  # type: ignore[arg-type]
    assert resolve_target("https://mixed.example/", parse_allow_list(["10.0.0.0/24"]), resolve)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "not an http(s) URL"),
        ("gopher://example.com/", "not an http(s) URL"),
        ("http://169.254.169.254/latest/meta-data/", "is 169.254.169.254, a link-local address (the cloud metadata"),
        ("http://[::ffff:127.0.0.1]:8080/x.png", "a loopback address in IPv6 form"),
        ("http://[::1]/x.png", "is ::1, a loopback address"),
        ("http://0.0.0.0:7860/x.png", "an unspecified address"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(Refused, match=re.escape(message)):
        resolve_target(url, AllowList())


# -- the fetcher against a real server ------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    seen_hosts: list[str] = []

    def do_GET(self) -> None:
        self.seen_hosts.append(self.headers.get("Host", ""))
        if self.path == "/image.png":
            self._send(200, PNG, {"Content-Type": "image/png", "Content-Length": str(len(PNG))})
        elif self.path == "/real.png":
            self._send(200, REAL_PNG, {"Content-Type": "image/png", "Content-Length": str(len(REAL_PNG))})
        elif self.path == "/redirect":
            self._send(302, b"", {"Location": "http://127.0.0.1/image.png", "Content-Length": "0"})
        elif self.path == "/big-declared":
            self._send(200, b"x" * 5000, {"Content-Length": "5000"})
        elif self.path == "/big-streamed":
            self._send(200, b"x" * 5000, {})  # HTTP/1.0 without a length: read until close
        elif self.path == "/gzip":
            self._send(200, b"\x1f\x8b", {"Content-Encoding": "gzip", "Content-Length": "2"})
        elif self.path == "/slow":
            time.sleep(2)
            self._send(200, PNG, {})
        else:
            self._send(404, b"no", {"Content-Length": "2"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOOPBACK_ALLOWED = parse_allow_list(["127.0.0.1"])


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    with pytest.raises(Refused, match=r"is 127\.0\.0\.1, a loopback address"):
        fetch(f"http://{server}/image.png", allow=AllowList(), max_bytes=10_000, timeout_s=5)
    got = fetch(f"http://{server}/image.png", allow=LOOPBACK_ALLOWED, max_bytes=10_000, timeout_s=5)
    assert got.data == PNG and got.content_type == "image/png"


def test_the_connection_is_pinned_to_the_first_resolution(server: str) -> None:
    """A name resolved once; a second (rebinding) answer is never asked for; Host is the name."""
    port = server.split(":")[1]
    answers = iter([["127.0.0.1"], ["10.255.255.1"]])
    calls: list[str] = []

    def rebinding(host: str, _port: int) -> list[IPAddress]:
        calls.append(host)
        return [ip_address(a) for a in next(answers)]

    policy = FetchPolicy(parse_allow_list(["127.0.0.0/8"]), timeout_s=5, resolver=rebinding)
    Handler.seen_hosts.clear()
    assert policy.fetch(f"http://images.test:{port}/image.png", max_bytes=10_000).data == PNG
    assert calls == ["images.test"]
    assert Handler.seen_hosts == [f"images.test:{port}"]


def test_redirects_are_not_followed(server: str) -> None:
    with pytest.raises(FetchFailed, match=r"answered 302, a redirect to http://127\.0\.0\.1/image\.png"):
        fetch(f"http://{server}/redirect", allow=LOOPBACK_ALLOWED, max_bytes=10_000, timeout_s=5)


@pytest.mark.parametrize("path", ["/big-declared", "/big-streamed"])
def test_bytes_past_the_limit_are_not_read(server: str, path: str) -> None:
    with pytest.raises(TooLarge):
        fetch(f"http://{server}{path}", allow=LOOPBACK_ALLOWED, max_bytes=1000, timeout_s=5)
    assert len(fetch(f"http://{server}{path}", allow=LOOPBACK_ALLOWED, max_bytes=5000, timeout_s=5).data) == 5000


def test_errors_of_the_remote_server(server: str) -> None:
    with pytest.raises(FetchFailed, match="answered HTTP 404"):
        fetch(f"http://{server}/missing", allow=LOOPBACK_ALLOWED, max_bytes=1000, timeout_s=5)
    with pytest.raises(FetchFailed, match="gzip-encoded"):
        fetch(f"http://{server}/gzip", allow=LOOPBACK_ALLOWED, max_bytes=1000, timeout_s=5)
    with pytest.raises(FetchFailed, match=r"did not answer within 0\.5 s"):
        fetch(f"http://{server}/slow", allow=LOOPBACK_ALLOWED, max_bytes=10_000, timeout_s=0.5)


def test_file_inputs_fetch_allowed_urls_and_store_them(server: str, tmp_path: Path) -> None:
    """The API's input step with a policy allowing the loopback test server."""
    entry = load_catalog().get("limner/tiny-sd-img2img")
    storage = LocalStorage(tmp_path / "files")
    base = "http://limner.test"
    policy = FetchPolicy(LOOPBACK_ALLOWED, timeout_s=5)
    parsed = parse_input(entry, {"prompt": "x", "image": f"http://{server}/real.png"})
    stored = store_file_inputs(parsed, entry, storage, base, OPEN, policy=policy)
    key = key_of(stored.image)  # type: ignore[attr-defined]
    assert key is not None and storage.get(key) == REAL_PNG
    assert (stored.width, stored.height) == (80, 48)  # type: ignore[attr-defined]
    # Without the allow-list entry, or for a body that is not an image, a 422 names the field.
    with pytest.raises(InvalidInput, match=r"^image: http://127\.0\.0\.1:\d+/real\.png is 127\.0\.0\.1, a loopback"):
        store_file_inputs(parsed, entry, storage, base, OPEN, policy=FetchPolicy(AllowList(), timeout_s=5))
    bad = parse_input(entry, {"prompt": "x", "image": f"http://{server}/big-declared"})
    with pytest.raises(InvalidInput, match="image is not a readable image"):
        store_file_inputs(bad, entry, storage, base, OPEN, policy=policy)
    redirect = parse_input(entry, {"prompt": "x", "image": f"http://{server}/redirect"})
    with pytest.raises(InvalidInput, match=r"^image: .*a redirect"):
        store_file_inputs(redirect, entry, storage, base, OPEN, policy=policy)
    small = entry.model_copy(update={"limits": entry.limits.model_copy(update={"max_input_bytes": 100})})
    with pytest.raises(LimitExceeded, match=r"over this model's limit of 100 bytes \(limits\.max_input_bytes\)"):
        store_file_inputs(parsed, small, storage, base, OPEN, policy=policy)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only ``images.test`` (no IP)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], cert
    httpd.shutdown()
    httpd.server_close()


def test_https_keeps_the_name_for_sni_and_certificate_checks(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    def to_loopback(_host: str, _port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]

    policy = FetchPolicy(LOOPBACK_ALLOWED, timeout_s=5, resolver=to_loopback)
    # Connected to 127.0.0.1, verified as images.test: the certificate has no IP in it.
    assert policy.fetch(f"https://images.test:{port}/real.png", max_bytes=10_000).data == REAL_PNG
    with pytest.raises(FetchFailed, match="CERTIFICATE_VERIFY_FAILED"):  # another name: no match
        policy.fetch(f"https://other.test:{port}/real.png", max_bytes=10_000)
