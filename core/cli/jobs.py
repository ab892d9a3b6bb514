"""The async work behind CLI commands, each on its own short-lived runtime."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import func, select

from api.schemas.tenancy import ApiKeyCreate, UserCreate
from api.services import tenancy
from core.db.migrate import upgrade_async
from core.domain.enums import Role
from core.domain.tenancy import Tenant, User
from core.runtime import Runtime
from core.settings import Mode, Settings


async def bootstrap_job(
    settings: Settings, tenant: str, email: str, password: str
) -> tenancy.Bootstrapped:
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            return await tenancy.bootstrap_tenant(
                session, name=tenant, admin_email=email, admin_password=password
            )
    finally:
        await runtime.close()


async def create_user_job(
    settings: Settings, slug: str, email: str, name: str, role: Role, password: str
) -> User:
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            tenant = await tenancy.tenant_by_slug(session, slug)
            data = UserCreate(email=email, name=name, role=role, password=password)
            return await tenancy.create_user(session, tenant.id, data)
    finally:
        await runtime.close()


async def create_key_job(settings: Settings, slug: str, name: str, role: Role) -> str:
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            tenant = await tenancy.tenant_by_slug(session, slug)
            created = await tenancy.create_api_key(
                session, tenant.id, ApiKeyCreate(name=name, role=role), None
            )
            return created.plaintext
    finally:
        await runtime.close()


async def first_start(settings: Settings, *, demo: bool) -> list[str]:
    """Embedded mode sets itself up; production expects `relaydesk db upgrade` and
    `relaydesk bootstrap` to have been run by the operator."""
    if settings.mode is not Mode.EMBEDDED:
        return [f"production mode: database {settings.database_dsn.split('@')[-1]}"]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_async(settings)
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as session:
            tenants = await session.scalar(select(func.count()).select_from(Tenant))
    finally:
        await runtime.close()
    credentials = settings.data_dir / "demo-credentials.txt"
    if tenants or not demo:
        lines = [f"embedded mode: data in {settings.data_dir.resolve()}"]
        if credentials.exists():
            lines.append(f"sign-in details of the demo tenant: {credentials.resolve()}")
        return lines
    from core.cli.demo import seed_demo

    password = secrets.token_urlsafe(12)
    summary = await seed_demo(settings, "Demo", admin_password=password)
    _write_private(credentials, "\n".join(summary) + "\n")
    return [*summary, f"(saved to {credentials.resolve()})"]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
