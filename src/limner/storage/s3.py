"""S3-compatible storage (AWS S3, MinIO, Ceph RGW, R2, …) through boto3.

``--storage s3://bucket[/prefix]``. Credentials, region and profile come from boto3's usual
chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws/config``,
instance roles, ``AWS_DEFAULT_REGION``…); ``LIMNER_S3_ENDPOINT_URL`` points it at a server
that is not AWS. Keys are made by limner as for local files and live under the prefix.

Clients fetch files straight from the store through presigned GET URLs that expire after
``LIMNER_S3_URL_TTL_S``; the API process and workers read and write with their own
credentials. boto3 is imported here only, when such a storage is opened: it is the ``s3``
extra, and local-storage installs never load it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from limner.errors import LimnerError, NotFound, StorageUnavailable
from limner.storage.base import check_key

# Errors S3 answers for a missing object or bucket (HEAD answers a bare 404).
MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def _client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise LimnerError("s3:// storage needs boto3: pip install 'limner[s3]' (on the API and every worker)") from None
    config = Config(
        signature_version="s3v4",
        # Servers other than AWS (MinIO, moto, Ceph) route by path; AWS picks its own style.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        # boto3's standard mode retries throttling and transient errors with backoff and jitter.
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Storage:
    """Media files as objects in one bucket, under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        url_ttl_s: float = 3600.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.url_ttl_s = url_ttl_s
        self.client = _client(endpoint_url, region)
        # Where this store's objects live as URLs, to recognise its own presigned URLs (inputs).
        self._object_base = urlparse(self.client.generate_presigned_url("get_object", Params=self._params("x")))

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url or 'aws'})"

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _params(self, key: str) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": self.prefix + key}

    def _call(self, what: str, key: str, method: str, **kwargs: Any) -> Any:
        """One S3 call; a missing object becomes NotFound, an unreachable store StorageUnavailable
        (retryable: a worker's job runs again rather than failing for good)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, Key=self.object_key(key), **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                raise NotFound(f"no file {key!r}", loc=("path", "key")) from None
            raise StorageUnavailable(f"S3 could not {what} {key!r} in bucket {self.bucket}: {exc}") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 could not {what} {key!r} in bucket {self.bucket}: {exc}") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # Keys are never reused for other content, so clients may cache for good.
        self._call(
            "write",
            key,
            "put_object",
            Body=data,
            ContentType=content_type,
            CacheControl="public, max-age=31536000, immutable",
        )

    def get(self, key: str) -> bytes:
        body = self._call("read", key, "get_object")["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def exists(self, key: str) -> bool:
        try:
            self._call("look up", key, "head_object")
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call("delete", key, "delete_object")

    def url(self, key: str, api_base: str) -> str:
        """A presigned GET URL, valid for ``url_ttl_s`` (made locally: no request to S3)."""
        url: str = self.client.generate_presigned_url(
            "get_object", Params=self._params(check_key(key)), ExpiresIn=int(self.url_ttl_s)
        )
        return url

    def key_for_url(self, url: str) -> str | None:
        """The key of a URL that names an object of this bucket and prefix (a presigned URL this
        store handed out, expired or not), else None: such inputs are read from the bucket
        with limner's credentials instead of being fetched back over the network."""
        parsed = urlparse(url)
        base = self._object_base
        if parsed.scheme != base.scheme or parsed.netloc != base.netloc:
            return None
        root = base.path[: -len(self.prefix + "x")]  # "/bucket/" (path style) or "/" (virtual hosts)
        path = unquote(parsed.path)
        if not path.startswith(root + self.prefix):
            return None
        try:
            return check_key(path[len(root + self.prefix) :])
        except LimnerError:
            return None


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    parsed = urlparse(url)
    if not parsed.netloc:
        raise LimnerError(f"storage URL {url!r} names no bucket: use s3://bucket[/prefix]")
    return parsed.netloc, unquote(parsed.path).strip("/")
