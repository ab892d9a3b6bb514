"""`relaydesk channels`: work the channels do outside a request: reading the mailboxes of
email channels over IMAP, sending queued replies, syncing WhatsApp templates. `relaydesk
up` runs all three in the background; these commands run one on its own."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

import typer

from core.settings import Settings

channels_app = typer.Typer(help="Customer channels.", no_args_is_help=True)


async def poll_email(settings: Settings, *, once: bool, interval: float, limit: int) -> int:
    """Poll every active email channel with IMAP settings; once, or every `interval`
    seconds until interrupted. The number of messages stored."""
    from api.services.email_poll import poll_all
    from core.runtime import Runtime

    runtime = Runtime.build(settings)
    stored = 0
    try:
        while True:
            results = await poll_all(runtime, limit=limit)
            for channel_id, result in results.items():
                stored += result.stored
                line = (
                    f"{channel_id}: fetched {result.fetched}, stored {result.stored}, "
                    f"duplicates {result.duplicates}, auto-replies {result.auto_replies}, "
                    f"bounces {result.bounces}, malformed {result.malformed}"
                )
                typer.echo(line)
                for error in result.errors:
                    typer.secho(f"{channel_id}: {error}", fg="yellow", err=True)
            # A full batch means more mail waits: go again at once.
            if once:
                return stored
            if not any(r.more for r in results.values()):
                await asyncio.sleep(interval)
    finally:
        await runtime.close()


@channels_app.command("poll-email")
def poll_email_command(
    once: Annotated[bool, typer.Option(help="Poll each mailbox once, then exit.")] = False,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between polls when running continuously.")
    ] = 30.0,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Messages per mailbox per poll.")
    ] = 100,
) -> None:
    """Read new mail of every active email channel with IMAP settings into conversations
    (each folder's position is kept in the database: a restart loses and repeats nothing)."""
    from core.cli.main import run

    stored = run(lambda s: poll_email(s, once=once, interval=interval, limit=limit))
    typer.echo(f"stored {stored} message(s)")


async def deliver(settings: Settings, *, once: bool) -> int:
    """Send due replies: once until nothing is due, or continuously until interrupted.
    The number of attempts made (with `once`)."""
    from api.services.delivery_worker import DeliveryWorker
    from core.runtime import Runtime

    runtime = Runtime.build(settings)
    worker = DeliveryWorker(runtime)
    try:
        if once:
            return await worker.drain()
        worker.start()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return 0
    finally:
        await worker.stop()
        typer.echo(f"sent {worker.sent}, failed {worker.failed}, to retry {worker.retried}")
        await runtime.close()


@channels_app.command("deliver")
def deliver_command(
    once: Annotated[bool, typer.Option(help="Send what is due now, then exit (for cron).")] = False,
) -> None:
    """Run the delivery worker on its own: send the queued replies of every channel with a
    provider, retrying transient failures (`relaydesk up` runs it already; several may run
    at once on PostgreSQL)."""
    from core.cli.main import run

    with contextlib.suppress(KeyboardInterrupt):
        run(lambda s: deliver(s, once=once))


async def sync_templates(settings: Settings, channel: uuid.UUID | None) -> int:
    """Sync the message templates of one WhatsApp channel, or of every active one; the
    number of channels that failed."""
    from datetime import timedelta

    from api.services.templates import TemplateSyncFailed, due_for_sync
    from api.services.templates import sync_templates as sync_one
    from core.runtime import Runtime

    runtime = Runtime.build(settings)
    failed = 0
    try:
        channels = [channel] if channel else await due_for_sync(runtime, timedelta(0))
        for channel_id in channels:
            try:
                result = await sync_one(runtime, channel_id)
            except (TemplateSyncFailed, LookupError) as exc:
                typer.secho(f"{channel_id}: {exc}", fg="yellow", err=True)
                failed += 1
                continue
            typer.echo(f"{channel_id}: {result.template_count} template(s)")
        return failed
    finally:
        await runtime.close()


@channels_app.command("sync-templates")
def sync_templates_command(
    channel: Annotated[
        uuid.UUID | None, typer.Option(help="One WhatsApp channel's id (default: every one).")
    ] = None,
) -> None:
    """Read the message templates of WhatsApp business accounts into RelayDesk (replies
    naming a template are checked against them)."""
    from core.cli.main import run

    if run(lambda s: sync_templates(s, channel)):
        raise typer.Exit(1)
