"""The uvicorn factory the benchmark serves: the real app, configured from RELAYDESK_*.

uvicorn bench._app:create --factory
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings


def create() -> FastAPI:
    return create_app(Settings())
