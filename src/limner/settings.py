"""Settings: built once (from flags and ``LIMNER_*`` environment variables) and passed down.

Every setting has one name used everywhere: the flag ``--store`` is ``LIMNER_STORE``, and so on.
Nothing reads the environment after a :class:`Settings` is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

STORE_SCHEMES: Final = ("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")


class Settings(BaseSettings):
    """Everything a limner process needs to know, resolved to absolute values."""

    model_config = SettingsConfigDict(env_prefix="LIMNER_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".limner"), description="Directory for the default store, files and tiny models.")
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=0, le=65535)
    base_url: str | None = Field(default=None, description="Public URL of the API, when behind a proxy.")
    store: str = Field(default="", description="Job store URL: sqlite:///… or postgresql://….")
    storage: str = Field(default="", description="Media storage URL: file://… or s3://bucket[/prefix].")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint of a server that is not AWS (MinIO, Ceph, R2…); credentials and "
        "region come from boto3's usual AWS_* variables and ~/.aws files.",
    )
    s3_url_ttl_s: float = Field(
        default=3600.0, gt=0, le=604800, description="Lifetime of the presigned S3 GET URLs handed out for files."
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate: `limner serve` speaks HTTPS with it.")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert.")
    model_aliases: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Other names for catalog models on the OpenAI-compatible routes, as alias=owner/name "
        "(LIMNER_MODEL_ALIASES: comma-separated), e.g. dall-e-3=black-forest-labs/flux.1-schnell.",
    )
    workers: int = Field(default=1, ge=0, le=64, description="Worker processes `limner serve` starts.")
    catalog: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(), description="Extra catalog YAML files (LIMNER_CATALOG: comma-separated)."
    )
    # Worker behaviour.
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps.")
    memory_budget_mb: int = Field(default=0, ge=0, description="Resident model budget; 0 = auto.")
    threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads per worker for torch; 0 = the cores shared among this machine's workers.",
    )
    batching: bool = True
    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    job_timeout_s: float = Field(
        default=1800.0,
        gt=0,
        description="A batch running longer fails with error_type timeout (entries may set their own).",
    )
    idle_poll_s: float = Field(default=0.05, gt=0)
    affinity_s: float = Field(
        default=10.0,
        ge=0,
        description="How much older a job for another model may be before a worker leaves its warm model.",
    )
    priority_step_s: float = Field(
        default=30.0, ge=0, description="Head start of each priority level: aging converts waiting time into rank."
    )
    # Where models run: local worker processes, or Ray Serve deployments on a Ray cluster.
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="local: worker processes on this machine; ray: Ray Serve deployments (pip install 'limner[ray]').",
    )
    ray_address: str = Field(
        default="", description="Ray cluster to join (host:port, ray://… or auto); empty starts a local Ray."
    )
    ray_min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest replicas of each Ray deployment.")
    ray_max_replicas: int = Field(default=4, ge=1, le=1000, description="Most replicas autoscaling may start.")
    ray_models_per_replica: int = Field(
        default=3, ge=1, le=100, description="Models one replica keeps loaded (least recently used go first)."
    )
    ray_num_cpus: float = Field(default=1.0, ge=0, description="CPUs Ray reserves for each replica.")
    # API behaviour.
    access_log: bool = Field(default=False, description="Log every HTTP request (uvicorn's access log).")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    run_timeout_s: float = Field(default=600.0, gt=0, description="How long POST /v1/run waits.")
    stream_poll_s: float = Field(
        default=0.02, gt=0, description="How often the API reads the updated_at of the jobs clients wait on (SQLite)."
    )
    # Workflows and batches: coordinators in every API process and worker advance them.
    coordinate: bool = Field(
        default=True, description="Run the workflow and batch coordinators in this process (any number may)."
    )
    max_batch_rows: int = Field(default=100_000, ge=1, le=10_000_000, description="Most rows one batch may have.")
    max_batch_file_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest batch input file (JSONL or CSV) uploaded or fetched."
    )
    batch_concurrency: int = Field(
        default=16, ge=1, le=10_000, description="Rows of one batch in the queue at once, when it does not say."
    )
    coordinate_poll_s: float = Field(
        default=0.05, gt=0, le=10, description="How often a coordinator looks for workflows and batches to advance."
    )
    submit_batch_max: int = Field(default=256, ge=1, description="Most submissions one group commit holds.")
    # File inputs: uploads and URLs the API fetches.
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024,
        gt=0,
        description="Largest file POST /v1/files stores (the request body is also capped by max_body_bytes).",
    )
    fetch_allow_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Hosts or CIDRs the API may fetch file inputs from even though they are loopback, private, "
            "link-local or otherwise non-public (LIMNER_FETCH_ALLOW_HOSTS: comma-separated)."
        ),
    )
    fetch_timeout_s: float = Field(
        default=20.0, gt=0, description="Connect and read timeout, and total time cap, of one input URL fetch."
    )
    # Webhooks (Standard Webhooks v1, delivered from the outbox in the job store).
    webhook_secret: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "whsec_… signing secrets (LIMNER_WEBHOOK_SECRET: comma-separated). Every one signs each delivery, "
            "so during a rotation receivers holding either secret verify; empty = a generated secret kept in the store."
        ),
    )
    webhook_allow_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Hosts or CIDRs webhooks may be sent to although they are not public (comma-separated).",
    )
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = Field(
        default=(0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0),
        description="Delay in seconds before each attempt of a delivery (the first is after the event); then give up.",
    )
    webhook_timeout_s: float = Field(default=15.0, gt=0, description="How long one delivery attempt may take.")
    webhook_poll_s: float = Field(default=0.1, gt=0, description="How often the dispatcher looks for due deliveries.")
    webhook_concurrency: int = Field(default=8, ge=1, le=256, description="Deliveries in flight per API process.")
    webhook_jitter: float = Field(
        default=0.1, ge=0, le=1, description="Each retry delay is stretched or shrunk at random by up to this share."
    )
    dispatch_webhooks: bool = Field(default=True, description="Run the webhook dispatcher in this API process.")
    # Jobs clients rely on.
    result_ttl_s: float = Field(
        default=0.0, ge=0, description="Keep results (and their files) this long after a job ends; 0 = forever."
    )
    cleanup_interval_s: float = Field(default=60.0, gt=0, description="How often expired results are deleted.")
    # API keys.
    require_keys: bool = Field(
        default=False, description="Require an API key on every route but health even before any key exists."
    )
    file_url_ttl_s: float = Field(
        default=3600.0, gt=0, description="Lifetime of the signed /v1/files URLs handed out while API keys are on."
    )
    # Observability: logs, prices, quotas, cache, quality.
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per log line.")
    usd_per_gpu_hour: str = Field(
        default="",
        description="Device time price: one number, or per device kind (LIMNER_USD_PER_GPU_HOUR=cuda=2.5,cpu=0.05).",
    )
    quotas: str = Field(default="", description="Per-key quotas: a YAML/JSON file, or inline JSON (see limner.quotas).")
    cache_ttl_s: float = Field(default=0.0, ge=0, description="Forget cache entries this old; 0 = as long as media.")
    cache_latent_budget_mb: int = Field(
        default=2048,
        ge=1,
        description="Disk for approximate caching's intermediate latents ($LIMNER_HOME/cache-latents); the "
        "least recently used go first.",
    )
    clip_model: str = Field(
        default="hf://openai/clip-vit-base-patch32",
        description="CLIP for quality scores: hf://repo, file:///path or tiny://clip (loaded when present).",
    )
    embedding_model: str = Field(
        default="", description="Folder of the semantic cache's sentence embedder; default all-MiniLM-L6-v2."
    )
    mlflow_tracking_uri: str = Field(
        default="", description="MLflow tracking store for quality results; default sqlite under LIMNER_HOME."
    )

    realtime_host: str = Field(
        default="127.0.0.1",
        description="Where a worker's real-time lane listens (an ephemeral port); API processes on other "
        "machines need an address they can reach.",
    )
    realtime_lane: bool = Field(default=True, description="Run the real-time lane for catalog entries that ask.")

    @field_validator("quotas")
    @classmethod
    def _check_quotas(cls, value: str) -> str:
        from limner.quotas import load_quotas

        load_quotas(value)  # a bad file or value stops the server at start, naming LIMNER_QUOTAS
        return value

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if value and not value.startswith(STORE_SCHEMES):
            raise ValueError(f"{value!r} is not a job store URL: use sqlite:///path or postgresql://user@host/db")
        if value.startswith("sqlite") and not value.startswith("sqlite:///"):
            raise ValueError(f"{value!r}: a SQLite store URL reads sqlite:///relative/path or sqlite:////absolute")
        return value

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError(f"{value!r} is not a storage URL: use file:///path or s3://bucket[/prefix]")
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/", 1)[0]:
            raise ValueError(f"{value!r} names no bucket: use s3://bucket[/prefix]")
        return value

    @field_validator("base_url", "s3_endpoint_url")
    @classmethod
    def _check_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host (LIMNER_{str(info.field_name).upper()})")
        return value

    @field_validator("usd_per_gpu_hour")
    @classmethod
    def _check_prices(cls, value: str) -> str:
        parse_prices(value)  # a typo fails at start-up
        return value

    def price_for(self, device: str) -> float:
        """USD per hour of ``device`` time (``cuda:1`` matches a ``cuda`` price); 0 when unpriced."""
        prices = parse_prices(self.usd_per_gpu_hour)
        return prices.get(device, prices.get(device.split(":", 1)[0], prices.get("*", 0.0)))

    @field_validator("catalog", mode="before")
    @classmethod
    def _split_catalog(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(p) for p in value.split(",") if p.strip())
        return value

    @field_validator("fetch_allow_hosts", "webhook_allow_hosts", "webhook_secret", "model_aliases", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        return tuple(str(p).strip() for p in value if str(p).strip()) if isinstance(value, list | tuple) else value

    @field_validator("fetch_allow_hosts", "webhook_allow_hosts")
    @classmethod
    def _check_hosts(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        from limner.net.guard import parse_allow_list

        # A typo fails at start-up, not on the first fetch or delivery.
        parse_allow_list(value, f"LIMNER_{str(info.field_name).upper()}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secrets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from limner.webhooks.signing import check_secret

        for secret in value:
            check_secret(secret)
        return value

    @field_validator("model_aliases")
    @classmethod
    def _check_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pair in value:
            alias, sep, target = pair.partition("=")
            if not sep or not alias.strip() or "/" not in target:
                raise ValueError(f"model alias {pair!r} must read alias=owner/name")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        return self

    @property
    def aliases(self) -> dict[str, str]:
        """alias -> model id, from model_aliases."""
        return {a.strip(): t.strip() for a, _, t in (p.partition("=") for p in self.model_aliases)}

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [p for p in value.split(",") if p.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("webhook_retry_schedule needs at least one delay, none of them negative")
        return value

    @model_validator(mode="after")
    def _check_replicas(self) -> Settings:
        if self.ray_min_replicas > self.ray_max_replicas:
            raise ValueError(
                f"ray_min_replicas ({self.ray_min_replicas}) is more than ray_max_replicas ({self.ray_max_replicas})"
            )
        return self

    def resolved(self) -> Settings:
        """Return a copy with the home made absolute and the store/storage defaults filled in."""
        home = self.home.expanduser().resolve()
        store = self.store or f"sqlite:///{home / 'limner.db'}"
        storage = self.storage or (home / "files").as_uri()
        catalog = tuple(p.expanduser().resolve() for p in self.catalog)
        update: dict[str, Any] = {"home": home, "store": store, "storage": storage, "catalog": catalog}
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None:
                update[name] = path.expanduser().resolve()
        update["mlflow_tracking_uri"] = self.mlflow_tracking_uri or f"sqlite:///{home / 'mlflow.db'}"
        return self.model_copy(update=update)

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process build the same settings."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, tuple | list):
                env[f"LIMNER_{name.upper()}"] = ",".join(str(p) for p in value)
            elif isinstance(value, bool):
                env[f"LIMNER_{name.upper()}"] = "1" if value else "0"
            else:
                env[f"LIMNER_{name.upper()}"] = str(value)
        return env


def parse_prices(text: str) -> dict[str, float]:
    """``"2.5"`` (every device) or ``"cuda=2.5,cpu=0.05"`` -> {device kind: USD per hour}."""
    prices: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, price = part.rpartition("=")
        try:
            value = float(price)
        except ValueError:
            raise ValueError(f"usd_per_gpu_hour: {part!r} is not a price (e.g. 2.5 or cuda=2.5)") from None
        if value < 0:
            raise ValueError(f"usd_per_gpu_hour: {part!r} is negative")
        prices[name.strip() or "*"] = value
    return prices


class SettingsError(ValueError):
    """Settings that cannot work: the message is one line per bad setting, naming it."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit (flag) values taking precedence.

    Raises SettingsError naming each bad setting by its environment variable."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given).resolved()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        name = f"LIMNER_{field.upper()}" if field else "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "; ".join(lines)


def child_env(settings: Settings) -> dict[str, str]:
    """The current environment plus the settings, for spawning workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update(settings.to_env())
    return env
