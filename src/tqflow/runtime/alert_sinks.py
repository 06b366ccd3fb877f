"""Where alerts go: a webhook (JSON POST), a Python callback, or a log line."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from tqflow.errors import SettingError

log = structlog.get_logger("tqflow.alerts")


class Sink(Protocol):
    async def send(self, payload: dict[str, Any]) -> None: ...


class WebhookSink:
    """POSTs each alert (or summary) as JSON. Only http(s) URLs; redirects are not followed blindly."""

    def __init__(self, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise SettingError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.timeout = timeout
        self.headers = {"content-type": "application/json", **(headers or {})}

    async def send(self, payload: dict[str, Any]) -> None:
        await asyncio.to_thread(self._post, json.dumps(payload).encode())

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:
            reply.read()

    def __repr__(self) -> str:
        return f"WebhookSink({self.url.split('?')[0]!r})"  # no query strings (they may hold secrets)


class CallbackSink:
    """Calls a Python function (sync or async) with the alert payload."""

    def __init__(self, callback: Callable[[dict[str, Any]], Any]) -> None:
        self.callback = callback

    @classmethod
    def from_path(cls, path: str) -> CallbackSink:
        """`package.module:function`, imported when the monitor starts."""
        module_name, sep, attribute = path.partition(":")
        if not sep or not module_name or not attribute:
            raise SettingError(f"callback {path!r} must look like `package.module:function`")
        function = getattr(importlib.import_module(module_name), attribute, None)
        if not callable(function):
            raise SettingError(f"callback {path!r}: `{attribute}` is not a function of `{module_name}`")
        return cls(function)

    async def send(self, payload: dict[str, Any]) -> None:
        result = self.callback(payload)
        if inspect.isawaitable(result):
            await result


class LogSink:
    """Writes each alert as one log line (level `error` unless told)."""

    def __init__(self, level: str = "error") -> None:
        if level not in ("debug", "info", "warning", "error", "critical"):
            raise SettingError(f"log level {level!r} must be debug, info, warning, error or critical")
        self.level = level

    async def send(self, payload: dict[str, Any]) -> None:
        fields = {k: v for k, v in payload.items() if k != "message"}
        getattr(log, self.level)(payload.get("message", "alert"), **fields)
