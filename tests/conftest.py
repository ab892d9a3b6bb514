"""Fixtures: one migrated database, runtime, app and client per backend; a fresh tenant per test.

Every data-layer and API test runs twice, on SQLite (embedded mode) and on the PostgreSQL
started by `scripts/services up`; the services' URLs come from `scripts/services env`."""

from __future__ import annotations

import asyncio
import gc
import os
import warnings

# No test may reach a model hub or send telemetry; set before any ML library is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from core.db.migrate import upgrade_async
from core.runtime import Runtime
from core.settings import Settings
from tests.channel_helpers import cleared, start_graph
from tests.factories import JWT_SECRET, Backend, FakeRetrieval, TenantCtx, make_tenant
from tests.fake_graph import FakeGraph

if TYPE_CHECKING:
    from models.analyzer import Analyzer
    from models.local import LocalModels

REPO = Path(__file__).resolve().parent.parent

# A developer's own RELAYDESK_* variables must not leak into the settings the tests build.
for _name in list(os.environ):
    if _name.startswith("RELAYDESK_") and not _name.startswith("RELAYDESK_TEST_"):
        del os.environ[_name]

SERVICES_HINT = (
    "start the services and export their URLs: "
    "scripts/services up && source <(scripts/services env)"
)


def require_env(name: str) -> str:
    """The URL of a backing service; its absence is an error, never a skip."""
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: {SERVICES_HINT}", pytrace=False)
    return value


class PostgresDatabase:
    """relaydesk_test with a fresh `public` schema, migrated once per session on first use."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._url: str | None = None
        self._lock = asyncio.Lock()

    async def url(self) -> str:
        async with self._lock:
            if self._url is None:
                url = require_env("RELAYDESK_TEST_DATABASE_URL")
                engine = create_async_engine(url)
                try:
                    async with engine.begin() as connection:
                        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                        await connection.execute(text("CREATE SCHEMA public"))
                except Exception as exc:
                    pytest.fail(
                        f"PostgreSQL at {url} failed ({exc!r}): {SERVICES_HINT}", pytrace=False
                    )
                finally:
                    await engine.dispose()
                await upgrade_async(self.settings(url))
                self._url = url
            return self._url

    def settings(self, url: str, **extra: Any) -> Settings:
        return Settings(database_url=url, data_dir=self.data_dir, jwt_secret=JWT_SECRET, **extra)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> PostgresDatabase:
    return PostgresDatabase(tmp_path_factory.mktemp("pg-data"))


async def _sqlite_settings(data_dir: Path) -> Settings:
    # Nothing external configured: the embedded mode, SQLite under the data dir.
    settings = Settings(data_dir=data_dir, jwt_secret=JWT_SECRET)
    await upgrade_async(settings)
    return settings


def client_for(runtime: Runtime, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://relaydesk.test")


@asynccontextmanager
async def serving(name: str, settings: Settings) -> AsyncIterator[Backend]:
    """A runtime and an in-process client on `settings`, closed afterwards."""
    runtime = Runtime.build(settings)
    client = client_for(runtime)
    try:
        yield Backend(name=name, settings=settings, runtime=runtime, client=client)
    finally:
        await client.aclose()
        await runtime.close()


@pytest_asyncio.fixture(
    scope="session",
    loop_scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresDatabase,
) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        settings = postgres.settings(await postgres.url())
    else:
        settings = await _sqlite_settings(tmp_path_factory.mktemp("sqlite-data"))
    async with serving(request.param, settings) as ready:
        yield ready


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the session (dashboard off, loopback only)."""
    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
        # Ray's client sockets are closed by the garbage collector: collect them now, not
        # inside a later test that would get the warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(scope="session")
def models_cache() -> Path:
    """Built model artifacts, keyed by content hash, so they outlive one test run
    (`.ci/run` points this at a per-machine cache)."""
    configured = os.environ.get("RELAYDESK_TEST_MODELS_CACHE")
    path = Path(configured) if configured else REPO / ".relaydesk" / "models-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """Fetched data sets (VADER for the sentiment head), cached across runs."""
    configured = os.environ.get("RELAYDESK_TEST_DATASETS")
    return Path(configured) if configured else REPO / ".relaydesk" / "datasets"


@pytest.fixture(scope="session")
def analyzer(models_cache: Path, datasets_dir: Path) -> Analyzer:
    """One real analyzer (e5 int8 ONNX and its heads, built once into the models cache) for
    the whole session; tests that need another configuration wrap its bundle."""
    from core.settings import AiSettings
    from models.analyzer import Analyzer
    from models.bundle import load_bundle

    return Analyzer(
        load_bundle(models_cache, AiSettings(), datasets_dir=datasets_dir), AiSettings()
    )


@pytest.fixture
def ai_models(backend: Backend, analyzer: Analyzer) -> LocalModels:
    """The backend's runtime with the in-process model service on the shared analyzer
    (a runtime otherwise loads its models from its own data dir on first use)."""
    from models.local import LocalModels, build_local_models

    current = backend.runtime.model_service
    if isinstance(current, LocalModels) and current.loaded is analyzer:
        return current
    models = build_local_models(backend.settings, backend.runtime.sessions, analyzer=analyzer)
    backend.runtime.models = models
    return models


@pytest.fixture
def fake_retrieval(backend: Backend, analyzer: Analyzer) -> Iterator[FakeRetrieval]:
    """The backend's model service with a retrieval double, for the length of one test."""
    from models.local import LocalModels

    fake = FakeRetrieval()
    before = backend.runtime.model_service
    backend.runtime.model_service = LocalModels(analyzer, retrieval=fake)
    try:
        yield fake
    finally:
        backend.runtime.model_service = before


@pytest.fixture
def no_retrieval(backend: Backend, analyzer: Analyzer) -> Iterator[None]:
    """The backend's model service without knowledge retrieval, for one test."""
    from models.local import LocalModels

    before = backend.runtime.model_service
    backend.runtime.model_service = LocalModels(analyzer, retrieval=None)
    try:
        yield
    finally:
        backend.runtime.model_service = before


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(backend: Backend) -> TenantCtx:
    """A new tenant with admin, agent and viewer users, an admin API key and a channel."""
    return await make_tenant(backend)


@pytest_asyncio.fixture(loop_scope="session")
async def other_tenant(backend: Backend) -> TenantCtx:
    """A second tenant, for isolation checks."""
    return await make_tenant(backend)


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    """A local Graph API (tests/fake_graph.py) for the Meta channels' tests."""
    yield from start_graph()


@pytest.fixture
def fresh_graph(graph: FakeGraph) -> FakeGraph:
    return cleared(graph)
