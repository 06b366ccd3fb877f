"""Serving the API with uvicorn (`tqrun api`)."""

from __future__ import annotations

import uvicorn

from tqflow.runtime.alerts import AlertSettings
from tqflow.runtime.api.app import create_app
from tqflow.runtime.api.settings import ApiSettings


def serve(
    settings: ApiSettings, host: str = "127.0.0.1", port: int = 8080, alerts: AlertSettings | None = None
) -> None:
    settings.check_binding(host)
    config = uvicorn.Config(
        create_app(settings, alerts),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        limit_concurrency=200,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
