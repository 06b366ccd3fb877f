"""`use std.notify as notify`: tell someone something happened, by webhook.

    job alert = notify.webhook(url="http://127.0.0.1:9000/hook", body=f"ETL failed for {params.day}") {
      after any_failed(extract, load)
    }

A text `body` is sent as `{"text": body}` (what Slack, Mattermost and most chat webhooks accept);
a dict is sent as it is. Returns the HTTP status; a status of 400 or more raises, so retries apply.
"""

from __future__ import annotations

from typing import Any

from tqflow.runtime import task
from tqflow.stdlib.http import request


@task
def webhook(url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 10.0) -> int:
    payload = {"text": body} if isinstance(body, str) else body
    response = request(url, method="POST", json=payload, headers=headers, timeout=timeout)
    return int(response["status"])
