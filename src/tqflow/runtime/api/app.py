"""The FastAPI application behind `tqrun api`: REST routes, /metrics and the dashboard's files."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tqflow.errors import ClientError
from tqflow.runtime.alerts import AlertMonitor, AlertSettings
from tqflow.runtime.api import events, lifecycle, operations, schedules, signals, spec
from tqflow.runtime.api.guards import BearerToken, BodyLimit, SameOrigin
from tqflow.runtime.api.routes import router
from tqflow.runtime.api.services import Services
from tqflow.runtime.api.settings import ApiSettings
from tqflow.runtime.params import ParamError
from tqflow.runtime.replication import NotReplicated

STATIC = Path(str(resources.files("tqflow.runtime.api").joinpath("static")))


class ApiAssetsMissing(ClientError, RuntimeError):
    """The API's documentation pages cannot be served: the package that ships their files is missing."""


def swagger_ui_files() -> Path:
    """Swagger UI 5's files (OpenAPI 3.1) as the swagger-ui-py package ships them, found without importing
    it (its module needs jinja2 and PyYAML, which the API does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise ApiAssetsMissing("the swagger-ui-py package is missing: pip install swagger-ui-py")
    return Path(spec.origin).parent / "static"


def create_app(settings: ApiSettings, alerts: AlertSettings | None = None) -> FastAPI:
    services = Services.open(settings.redis_url, settings.namespace)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        monitor = None
        if alerts is not None:
            monitor = asyncio.create_task(AlertMonitor(services.redis, settings.namespace, alerts).run(stop))
        yield
        stop.set()
        if monitor is not None:
            await asyncio.gather(monitor, return_exceptions=True)
        await services.close()

    app = FastAPI(
        docs_url=None,  # served below with Swagger UI's files from the swagger-ui-py package: offline
        redoc_url=None,
        title="tqflow",
        summary="Runs, jobs, flows, queues, workers and the dead-letter queue of one tqflow deployment.",
        version="1",
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(router)
    app.include_router(operations.router)
    app.include_router(lifecycle.router)
    app.include_router(schedules.router)
    app.include_router(signals.router)
    app.include_router(events.router)
    app.include_router(spec.api)
    app.include_router(spec.router)
    _add_error_handlers(app)
    _add_metrics_and_dashboard(app, services)
    app.add_middleware(BodyLimit, limit=settings.max_body)
    app.add_middleware(BearerToken, token=settings.token)
    app.add_middleware(SameOrigin, local_only=not settings.token, hosts=settings.allowed_hosts)
    app.add_middleware(RequestMetrics, registry=services.registry)
    return app


class RequestMetrics:
    """`tqflow_api_requests_total{method, route, status}` and `tqflow_api_request_seconds{method, route}`:
    the route is its template (`/api/jobs/{job_id}`), `unmatched` for a path no route has (bounded)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "tqflow_api_requests", "Requests answered", ("method", "route", "status"), registry=registry
        )
        self.seconds = Histogram(
            "tqflow_api_request_seconds", "Time to answer", ("method", "route"), registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope["method"]) if scope["method"] in KNOWN_METHODS else "other"
            self.requests.labels(method, route, str(status)).inc()
            self.seconds.labels(method, route).observe(time.perf_counter() - began)


KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def _add_error_handlers(app: FastAPI) -> None:
    async def not_found(_request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err).strip("'\"")}, status_code=404)

    async def unprocessable(_request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    async def not_replicated(_request: Request, err: Exception) -> JSONResponse:
        # done on the master, not known to survive a failover: the ids say what to check before re-sending
        assert isinstance(err, NotReplicated)
        return JSONResponse({"detail": str(err), "ids": err.ids}, status_code=503)

    app.add_exception_handler(LookupError, not_found)
    app.add_exception_handler(NotReplicated, not_replicated)
    for error in (ParamError, ValueError, TypeError):
        app.add_exception_handler(error, unprocessable)


def _add_metrics_and_dashboard(app: FastAPI, services: Services) -> None:
    @app.get("/metrics", tags=["metrics"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus gauges read from Redis: queue depth by queue and priority, DLQ, runs by state."""
        await services.collector.refresh()
        return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="tqflow API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_files()), name="swagger")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
