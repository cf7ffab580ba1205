"""Settings: built once (from flags and ``LIMNER_*`` environment variables) and passed down.

Every setting has one name used everywhere: the flag ``--store`` is ``LIMNER_STORE``, and so on.
Nothing reads the environment after a :class:`Settings` is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a limner process needs to know, resolved to absolute values."""

    model_config = SettingsConfigDict(env_prefix="LIMNER_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".limner"), description="Directory for the default store, files and tiny models.")
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=0, le=65535)
    base_url: str | None = Field(default=None, description="Public URL of the API, when behind a proxy.")
    store: str = Field(default="", description="Job store URL: sqlite:///… or postgresql://….")
    storage: str = Field(default="", description="Media storage URL: file://….")
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
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    run_timeout_s: float = Field(default=600.0, gt=0, description="How long POST /v1/run waits.")
    stream_poll_s: float = Field(default=0.1, gt=0)
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

    @field_validator("catalog", mode="before")
    @classmethod
    def _split_catalog(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(p) for p in value.split(",") if p.strip())
        return value

    @field_validator("fetch_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        return tuple(p.strip() for p in value if p.strip()) if isinstance(value, list | tuple) else value

    @field_validator("fetch_allow_hosts")
    @classmethod
    def _check_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from limner.net.guard import parse_allow_list

        parse_allow_list(value)  # a typo fails at start-up, not on the first fetch
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
        return self.model_copy(update={"home": home, "store": store, "storage": storage, "catalog": catalog})

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

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


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit (flag) values taking precedence."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given).resolved()


def child_env(settings: Settings) -> dict[str, str]:
    """The current environment plus the settings, for spawning workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update(settings.to_env())
    return env
