"""One typed settings object for every RelayDesk process, validated at start."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "relaydesk-embedded-insecure-secret-change-me"
# S3's rule for new buckets (the strictest of the S3-compatible servers).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Mode(StrEnum):
    EMBEDDED = "embedded"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    # Empty means "SQLite file under the data dir" (the embedded default).
    url: str = ""
    # Connections a process keeps open once it has needed them. Past `pool_size`, up to
    # `max_overflow` more are opened for a burst and closed when returned: with 32
    # concurrent requests on a pool of 10, that opened and closed a PostgreSQL backend
    # per request or so (a third of the list benchmark's throughput).
    pool_size: int = Field(default=32, ge=1, le=200)
    max_overflow: int = Field(default=16, ge=0, le=400)
    echo: bool = False


class RedisSettings(BaseModel):
    # Empty means in-memory fallbacks for cache and rate limits.
    url: str = ""


class KafkaSettings(BaseModel):
    # Empty means the in-process event bus.
    bootstrap_servers: str = ""
    topic_prefix: str = "relaydesk."
    partitions: int = Field(default=6, ge=1, le=1024)
    # Of the topics RelayDesk creates (existing topics are left as they are).
    replication_factor: int = Field(default=1, ge=1, le=16)


class PipelineSettings(BaseModel):
    """The enrichment pipeline (pipelines/README.md): Kafka consumer actors when Kafka is
    configured, the in-process subscriber otherwise."""

    enabled: bool = True
    consumer_group: str = "relaydesk-enrichment"
    consumers: int = Field(default=2, ge=1, le=256)
    # Ray CPUs each consumer actor reserves: on 2 cores Serve holds ~1.7 (serve/options.py).
    consumer_cpus: float = Field(default=0.05, ge=0.0)
    batch_max_messages: int = Field(default=64, ge=1, le=5000)
    batch_max_wait_ms: int = Field(default=50, ge=1, le=60_000)
    # Batches enriched concurrently per consumer (written and committed in order): the
    # bound on in-flight work.
    max_inflight_batches: int = Field(default=2, ge=1, le=32)
    # Enrichment attempts per batch (then per message) before a message is dead-lettered.
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_ms: int = Field(default=200, ge=0, le=60_000)
    # Embedded mode: on start, enrich stored messages that have no analysis yet.
    catch_up_on_start: bool = True
    # A consumer that stops heartbeating (killed) loses its partitions after this long.
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)


class RaySettings(BaseModel):
    # Empty means a local Ray started by the process.
    address: str = ""


class MlflowSettings(BaseModel):
    # Empty means a local store under the data dir.
    tracking_uri: str = ""


class TrainingSettings(BaseModel):
    # Start `relaydesk train <task> --include-feedback` once this many new corrections of a
    # task have arrived since the last start; 0 (the default) never starts one.
    retrain_after_corrections: int = Field(default=0, ge=0)


class AuthSettings(BaseModel):
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: str = "HS256"
    token_ttl_minutes: int = Field(default=12 * 60, ge=1, le=60 * 24 * 30)


class ApiSettings(BaseModel):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    rate_limit_per_minute: int = Field(default=6000, ge=0, description="0 disables")
    page_size_default: int = Field(default=50, ge=1, le=500)
    page_size_max: int = Field(default=500, ge=1, le=5000)
    # How long a process reuses a resolved API key or token (api/principal_cache.py); a
    # change made through another process reaches this one within that time. 0 disables.
    auth_cache_seconds: float = Field(default=5.0, ge=0.0, le=300.0)
    # A serving process freezes its start-up objects and collects young ones every this
    # many allocations (api/app.py `tune_gc`); 0 keeps Python's collector settings.
    gc_young_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    # Answer well-formed conversation and ticket lists without FastAPI's per-request
    # machinery (api/fast_lists.py); anything else goes to the routes either way.
    fast_lists: bool = True


class AiSettings(BaseModel):
    # e5-onnx: int8 ONNX Runtime (the serving default); e5-torch; minilm (English only);
    # hashing (no weights: demos and fast tests, the heads refuse it).
    encoder: str = Field(default="e5-onnx", pattern="^(e5-onnx|e5-torch|minilm|hashing)$")
    encoder_threads: int = Field(default=1, ge=1, le=64)
    # A head below this calibrated confidence answers `label: null` with a reason.
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    # Longer texts are cut before analysis; the answer says so.
    max_text_chars: int = Field(default=20_000, ge=100)
    # Above this many chunks per tenant the vector index switches from exact to HNSW.
    hnsw_min_chunks: int = Field(default=20_000, ge=100)
    # Serve the models on Ray Serve next to the API (`relaydesk up`), or in-process.
    serve: bool = True


class S3Settings(BaseModel):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Cloudflare R2, ...) for attachments."""

    bucket: str = ""
    # Objects are stored as `<prefix><sha256>`; empty stores them at the bucket's root.
    prefix: str = "attachments/"
    # Empty: AWS S3 itself (the region picks the endpoint); else e.g. http://minio:9000.
    endpoint_url: str = ""
    region: str = "us-east-1"
    # Both empty: boto3's own credential chain (AWS_* variables, instance or pod role).
    access_key_id: str = ""
    secret_access_key: SecretStr = SecretStr("")
    # path: https://host/bucket/key (MinIO, Ceph, most self-hosted servers);
    # virtual: https://bucket.host/key; auto: virtual where the bucket name allows it.
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # Create the bucket at start when it is missing (otherwise that is an error).
    create_bucket: bool = False
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if value and not _BUCKET_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid bucket name: 3-63 characters of lowercase letters, "
                "digits, dots and hyphens, starting and ending with a letter or digit"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint_url must start with http:// or https://, not {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> S3Settings:
        if bool(self.access_key_id) != bool(self.secret_access_key.get_secret_value()):
            raise ValueError(
                "set both RELAYDESK_STORAGE__S3__ACCESS_KEY_ID and "
                "RELAYDESK_STORAGE__S3__SECRET_ACCESS_KEY, or neither (boto3's credential chain)"
            )
        return self


class StorageSettings(BaseModel):
    """Attachment storage (core/storage/): a local directory by default, or an S3 bucket."""

    backend: Literal["local", "s3"] = "local"
    s3: S3Settings = S3Settings()
    # Empty: `<data_dir>/attachments`.
    attachments_dir: Path | None = None
    # WhatsApp documents go up to 100 MB; most support files are far smaller.
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Exact types or `family/*`; anything else is refused with the type in the reason.
    allowed_types: list[str] = Field(
        default_factory=lambda: [
            "image/*",
            "audio/*",
            "video/*",
            "text/plain",
            "text/csv",
            "application/pdf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.*",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/zip",
        ]
    )

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3.bucket:
            raise ValueError(
                "RELAYDESK_STORAGE__BACKEND=s3 needs a bucket: set RELAYDESK_STORAGE__S3__BUCKET"
            )
        return self


class ChannelSettings(BaseModel):
    """The channels' work with providers (connectors/): calls made inside a request, the
    delivery worker that sends replies, the IMAP poller and the WhatsApp template sync
    (connectors/README.md, *Delivery*)."""

    # Tries of one Graph API call made inside a request or a sync (inbound media, templates)
    # on 429/5xx/transport errors, with exponential backoff between. Replies are retried
    # by the delivery worker instead, one provider call per attempt.
    send_max_attempts: int = Field(default=3, ge=1, le=10)
    send_backoff_ms: int = Field(default=250, ge=0, le=60_000)
    http_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # Where web chat replies are published to the visitors' open sockets: a Redis URL
    # (pub/sub, every API process hears it), empty for the in-process hub. Filled from
    # RELAYDESK_REDIS_URL unless set.
    web_push_url: str = ""

    # The delivery worker (api/services/delivery_worker.py), run by `relaydesk up`.
    delivery_worker: bool = True
    # How often it looks for due replies without a nudge (a reply stored in the same
    # process wakes it at once).
    delivery_poll_interval_s: float = Field(default=2.0, gt=0, le=3600)
    # Replies a worker claims and sends at once (never two of one conversation).
    delivery_concurrency: int = Field(default=8, ge=1, le=256)
    # Attempts per reply, and how long after it was written it may still be sent; then
    # `failed` with the provider's last error.
    delivery_max_attempts: int = Field(default=8, ge=1, le=100)
    delivery_max_age_s: float = Field(default=24 * 3600, gt=0)
    # Delay before the second attempt, doubled for each later one (with jitter), at most
    # `delivery_backoff_max_s`; a provider's Retry-After is waited at least.
    delivery_backoff_s: float = Field(default=2.0, ge=0, le=3600)
    delivery_backoff_max_s: float = Field(default=300.0, ge=0, le=24 * 3600)
    # A claimed reply whose worker neither recorded nor rescheduled it within this long (a
    # crash) is claimed again: longer than the slowest attempt (an upload and a send, each
    # bounded by http_timeout_s).
    delivery_lease_s: float = Field(default=120.0, gt=0, le=24 * 3600)

    # Re-sync every WhatsApp channel's message templates this often; 0: only on demand.
    template_sync_interval_s: float = Field(default=6 * 3600, ge=0)

    # The IMAP poller of email channels, run by `relaydesk up`.
    email_poller: bool = True
    email_poll_interval_s: float = Field(default=30.0, gt=0, le=24 * 3600)
    email_poll_limit: int = Field(default=100, ge=1, le=1000)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> ChannelSettings:
        if self.delivery_lease_s <= 2 * self.http_timeout_s:
            raise ValueError(
                "channels.delivery_lease_s must be longer than twice channels.http_timeout_s "
                "(an upload and a send): a send still running when its lease ends is "
                "claimed and sent again"
            )
        return self


class WidgetSettings(BaseModel):
    """The web chat widget's endpoints (`/widget/...`, connectors/README.md)."""

    # Messages one visitor may send per minute, and new visitors one address may start
    # per channel (renewing a visitor's token is not counted: every page load does it).
    messages_per_minute: int = Field(default=30, ge=0, description="0 disables")
    sessions_per_minute: int = Field(default=60, ge=0, description="0 disables")
    max_text_chars: int = Field(default=4000, ge=1, le=65_536)
    # Messages sent with the history when a widget connects or reloads.
    history_limit: int = Field(default=100, ge=1, le=1000)
    # An open socket also reads the database this often, so a push lost on the way
    # (Redis restarted, an API replica without Redis) still arrives.
    catch_up_seconds: float = Field(default=15.0, gt=0, le=3600)
    # How long a new socket may take to present its visitor token.
    auth_timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class Settings(BaseSettings):
    """Settings from `RELAYDESK_*` variables; nested sections use `__`, e.g.
    `RELAYDESK_DATABASE__URL`. The short names documented in the README
    (`RELAYDESK_DATABASE_URL`, ...) are accepted too."""

    model_config = SettingsConfigDict(
        env_prefix="RELAYDESK_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path(".relaydesk")
    database_url: str = ""
    redis_url: str = ""
    kafka_bootstrap_servers: str = ""
    ray_address: str = ""
    mlflow_tracking_uri: str = ""
    jwt_secret: SecretStr | None = None

    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()
    ray: RaySettings = RaySettings()
    mlflow: MlflowSettings = MlflowSettings()
    auth: AuthSettings = AuthSettings()
    api: ApiSettings = ApiSettings()
    ai: AiSettings = AiSettings()
    pipeline: PipelineSettings = PipelineSettings()
    training: TrainingSettings = TrainingSettings()
    storage: StorageSettings = StorageSettings()
    channels: ChannelSettings = ChannelSettings()
    widget: WidgetSettings = WidgetSettings()

    @model_validator(mode="after")
    def _fold_short_names(self) -> Settings:
        # The flat names win over the nested defaults: they are what operators type.
        if self.database_url:
            self.database.url = self.database_url
        if self.redis_url:
            self.redis.url = self.redis_url
        if self.kafka_bootstrap_servers:
            self.kafka.bootstrap_servers = self.kafka_bootstrap_servers
        if self.ray_address:
            self.ray.address = self.ray_address
        if self.mlflow_tracking_uri:
            self.mlflow.tracking_uri = self.mlflow_tracking_uri
        if self.jwt_secret is not None:
            self.auth.jwt_secret = self.jwt_secret
        if not self.channels.web_push_url:
            self.channels.web_push_url = self.redis.url
        return self

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if (
            self.mode is Mode.PRODUCTION
            and self.auth.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET
        ):
            raise ValueError(
                "RELAYDESK_JWT_SECRET must be set to a private value outside the embedded "
                "mode (a database, Redis or Kafka URL is configured)"
            )
        if len(self.auth.jwt_secret.get_secret_value()) < 16:
            raise ValueError("RELAYDESK_JWT_SECRET must be at least 16 characters long")
        return self

    @property
    def mode(self) -> Mode:
        external = (self.database.url, self.redis.url, self.kafka.bootstrap_servers)
        return Mode.PRODUCTION if any(external) else Mode.EMBEDDED

    @property
    def database_dsn(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'relaydesk.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        """Built model artifacts, each in a folder named by its content hash."""
        return self.data_dir / "models"

    @property
    def attachments_dir(self) -> Path:
        return self.storage.attachments_dir or self.data_dir / "attachments"

    @property
    def mlflow_uri(self) -> str:
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
