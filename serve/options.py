"""What the Serve app is told at deploy time, and how a replica turns it into `Settings`.

Secrets never travel in the app's arguments (the Serve config is visible in the dashboard
and the REST API): a replica reads them from its own environment, like any RelayDesk
process. The arguments carry only what must agree across replicas started elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings, get_settings


class AppArgs(BaseModel):
    """Arguments of the application builder (`serve/config.yaml` → `args`)."""

    # Absolute data dir shared by the replicas (SQLite file, built models); None: each
    # replica's own `RELAYDESK_DATA_DIR`.
    data_dir: str | None = None
    encoder: str | None = Field(default=None, description="Overrides RELAYDESK_AI__ENCODER")
    encoder_threads: int | None = Field(
        default=None, ge=1, le=64, description="Overrides RELAYDESK_AI__ENCODER_THREADS"
    )
    encoder_replicas: int = Field(default=1, ge=1, le=64)
    # CPU reserved per replica. Ray starts nothing it cannot fit, silently: on 2 cores the
    # sum (1.0 + 0.3 + 0.2 + 0.1 + 0.1 + 0.05) leaves room for the pipeline's consumer
    # actors.
    encoder_cpus: float = Field(default=1.0, gt=0)
    enricher_cpus: float = Field(default=0.3, gt=0)
    retriever_cpus: float = Field(default=0.2, gt=0)
    churn_cpus: float = Field(default=0.1, gt=0)
    api_cpus: float = Field(default=0.1, gt=0)
    api_replicas: int = Field(default=1, ge=1, le=64)
    # The ChannelWorkers replica waits on providers and mailboxes, and computes little.
    workers_cpus: float = Field(default=0.05, gt=0)

    def settings(self) -> Settings:
        """The replica's settings: its environment, then these arguments on top."""
        settings = get_settings()
        update: dict[str, object] = {}
        if self.data_dir:
            update["data_dir"] = Path(self.data_dir)
        ai: dict[str, object] = {}
        if self.encoder:
            ai["encoder"] = self.encoder
        if self.encoder_threads:
            ai["encoder_threads"] = self.encoder_threads
        if ai:
            update["ai"] = settings.ai.model_copy(update=ai)
        return settings.model_copy(update=update) if update else settings


HeadTask = Literal["intent", "sentiment", "urgency"]


class EnricherConfig(BaseModel):
    """The Enricher's `user_config`: what changes on running replicas without a restart
    (Serve calls `reconfigure` with it in place)."""

    model_config = ConfigDict(extra="forbid")

    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # Task → registry version ("3") or alias ("champion") to serve; a task left out serves
    # the bundle's head.
    heads: dict[HeadTask, str] = Field(default_factory=dict)
    # Task → challenger version run in shadow beside the served head.
    shadow: dict[HeadTask, str] = Field(default_factory=dict)

    def user_config(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class HeadsStatus:
    """What an Enricher replica serves, and what became of the last `user_config` it got."""

    replica: str
    pid: int
    requested: dict[str, Any] | None  # the last user_config, applied or not
    versions: dict[str, str]  # task → version label served
    pending: bool = False  # `requested` is still loading; the fields below are the last done
    shadow: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the last config done is not served (the old heads are)
    load_ms: float = 0.0  # building the requested heads, off the request path
    swapped_at: float | None = None  # time.time() of the last swap
