"""`relaydesk pipeline …`: run the consumer pool, look at it, its dead letters, and replay."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from core.settings import Settings
    from pipelines.handler import Analyze

app = typer.Typer(
    help="The enrichment pipeline: Kafka consumers on Ray, dead letters, replay.",
    no_args_is_help=True,
)
dlq_app = typer.Typer(help="The dead-letter topic: list and retry.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

ModelsKind = Literal["auto", "serve", "local"]
MODELS_HELP = (
    "serve: the Enricher of the running Serve app (on RELAYDESK_RAY_ADDRESS, or a local Ray "
    "started by `relaydesk up`); local: the models in this process; auto: serve when "
    "RELAYDESK_RAY_ADDRESS is set, else local."
)
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when no zone is given) or an age: 30m, 6h, 7d, 2w."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor an age like 6h or 7d"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _settings() -> Settings:
    from core.cli.main import load_settings

    return load_settings()


def _require_kafka(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        typer.secho(
            "Kafka is not configured (RELAYDESK_KAFKA_BOOTSTRAP_SERVERS): in embedded mode the "
            "API process enriches messages itself and keeps no dead-letter topic.",
            fg="yellow",
            err=True,
        )
        raise typer.Exit(2)


def _connect_ray(settings: Settings) -> None:
    import ray

    from serve.runner import ray_env

    ray_env()
    if not ray.is_initialized():
        ray.init(address=settings.ray.address or "auto", logging_level=logging.WARNING)


def _models(settings: Settings, kind: ModelsKind) -> Analyze:
    from pipelines.actors import LocalAnalyzer, ServeEnricher

    if kind == "auto":
        kind = "serve" if settings.ray.address else "local"
    if kind == "serve":
        _connect_ray(settings)
        return ServeEnricher()()
    return LocalAnalyzer(settings)()


@app.command("run")
def run_pool(
    consumers: Annotated[
        int | None,
        typer.Option(min=1, help="Consumer actors; default RELAYDESK_PIPELINE__CONSUMERS."),
    ] = None,
    models: Annotated[
        str, typer.Option(help="serve or local: where the actors get the models.")
    ] = "serve",
) -> None:
    """Run the consumer actor pool on Ray until Ctrl-C.

    `relaydesk up` runs it already when Kafka is configured; this is for a separate
    pipeline process or cluster."""
    from pipelines.actors import LocalAnalyzer, ServeEnricher, start_pool, stop_pool
    from serve.runner import start_ray

    settings = _settings()
    _require_kafka(settings)
    if models not in ("serve", "local"):
        raise typer.BadParameter("--models is serve or local")
    started, _ = start_ray(settings, dashboard=False)
    factory = ServeEnricher() if models == "serve" else LocalAnalyzer(settings)
    supervisor = start_pool(settings, factory, consumers)
    typer.echo(f"Consumer pool running ({consumers or settings.pipeline.consumers} actors).")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    stop_pool(supervisor)
    if started:
        import ray

        ray.shutdown()
    typer.echo("Stopped.")


@app.command("status")
def status() -> None:
    """Lag per partition, consumers, throughput, batch sizes and latencies, as JSON."""
    from pipelines.ops import PipelineMonitor

    settings = _settings()
    if settings.ray.address:
        _connect_ray(settings)
    summary = asyncio.run(PipelineMonitor(settings).summary())
    typer.echo(json.dumps(summary, indent=2, default=str))


@dlq_app.command("list")
def dlq_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest N entries.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Dead letters, oldest first: when, why, where from, which message, the error."""
    from pipelines.dead_letter import read_dead_letters

    settings = _settings()
    _require_kafka(settings)
    entries = asyncio.run(read_dead_letters(settings))
    if reason:
        entries = [e for e in entries if e.letter.reason == reason]
    entries = entries[-limit:]
    for entry in entries:
        letter = entry.letter
        if as_json:
            row = {"partition": entry.partition, "offset": entry.offset}
            typer.echo(json.dumps({**row, **letter.model_dump(mode="json")}))
            continue
        message = entry.message_id
        typer.echo(
            f"{letter.failed_at:%Y-%m-%d %H:%M:%S} {entry.partition}:{entry.offset} "
            f"{letter.reason} from {letter.source_topic}:{letter.source_partition}:"
            f"{letter.source_offset} message={message or '-'} attempts={letter.attempts}\n"
            f"    {letter.error[:300]}"
        )
    if not as_json:
        typer.echo(f"{len(entries)} dead letter(s)")


@dlq_app.command("retry")
def dlq_retry(
    reason: Annotated[
        list[str] | None,
        typer.Option(
            help="Reasons to retry (repeatable); default enrichment_failed, write_failed."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N messages.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be retried.")] = False,
) -> None:
    """Publish dead-lettered messages to their source topic again.

    Messages analyzed since are left out; a message is retried once however often it was
    dead-lettered."""
    from pipelines.dead_letter import RETRYABLE, retry_dead_letters

    settings = _settings()
    _require_kafka(settings)
    reasons = tuple(reason) if reason else RETRYABLE
    result = asyncio.run(
        retry_dead_letters(settings, reasons=reasons, limit=limit, dry_run=dry_run)
    )
    verb = "would republish" if dry_run else "republished"
    typer.echo(
        f"{verb} {result.republished}; already analyzed {result.already_analyzed}; "
        f"other reasons left alone {result.left_alone}"
    )


@app.command("replay")
def replay_cmd(
    since: Annotated[str, typer.Option(help="ISO 8601 time, or an age such as 6h, 7d.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug or id; default all.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Count and ask the models once; write nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Messages per model call.")] = 64,
    models: Annotated[str, typer.Option(help=MODELS_HELP)] = "auto",
) -> None:
    """Re-enrich messages stored since a time with the current models.

    Each message gets a new row under the new model version; the old rows are kept."""
    from tqdm import tqdm

    from core.db.engine import create_engine, create_sessionmaker
    from pipelines.replay import ReplaySummary, replay

    if models not in ("auto", "serve", "local"):
        raise typer.BadParameter("--models is auto, serve or local")
    settings = _settings()
    moment = parse_since(since)
    analyze = _models(settings, models)  # type: ignore[arg-type]

    async def job() -> ReplaySummary:
        engine = create_engine(settings)
        try:
            sessions = create_sessionmaker(engine)
            tenant_id = await _tenant_id(sessions, tenant) if tenant else None
            with tqdm(unit="msg", desc="replay", disable=dry_run) as bar:

                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                return await replay(
                    sessions,
                    analyze,
                    settings.pipeline,
                    since=moment,
                    tenant_id=tenant_id,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    progress=progress,
                )
        finally:
            await engine.dispose()

    summary = asyncio.run(job())
    for line in _summary_lines(summary, moment):
        typer.echo(line)
    if summary.failed:
        raise typer.Exit(1)


async def _tenant_id(sessions: Any, tenant: str) -> uuid.UUID:
    from sqlalchemy import or_, select

    from core.domain.tenancy import Tenant

    try:
        by_id = uuid.UUID(tenant)
    except ValueError:
        by_id = None
    async with sessions() as session:
        query = select(Tenant.id).where(
            or_(Tenant.slug == tenant, Tenant.id == by_id) if by_id else Tenant.slug == tenant
        )
        found: uuid.UUID | None = await session.scalar(query)
    if found is None:
        typer.secho(f"no tenant {tenant!r}", fg="red", err=True)
        raise typer.Exit(1)
    return found


def _summary_lines(summary: Any, since: datetime) -> list[str]:
    head = "dry run: " if summary.dry_run else ""
    verb = "would write" if summary.dry_run else "wrote"
    lines = [
        f"{head}{summary.messages} message(s) since {since.isoformat()}",
        f"  current models: {summary.model_version or 'unknown'}",
        f"  {verb} {summary.written} new analysis row(s); {summary.unchanged} already current; "
        f"{summary.failed} failed",
        "  rows before, by model version: "
        + (", ".join(f"{v}={n}" for v, n in sorted(summary.before.items())) or "none"),
        f"  took {summary.elapsed_s:.1f} s",
    ]
    lines.extend(f"  error: {e}" for e in summary.errors)
    return lines
