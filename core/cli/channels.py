"""`relaydesk channels`: work the channels do outside a request, such as reading the
mailboxes of email channels over IMAP."""

from __future__ import annotations

import asyncio
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
