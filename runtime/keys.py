"""The one owner of the Redis key layout. Nothing else builds a key string.

Every key starts with the namespace in a hash tag, `{ns}`, so one deployment lives in one Redis
Cluster slot. The Lua scripts receive `prefix` and build job and run keys with the same suffixes
as `job()` and `run()` below (see lua/common.lua); tests pin both.
"""

from __future__ import annotations

import re

from tqflow.compiler.plan import PRIORITIES

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
GROUP = "tqflow"


class Keys:
    def __init__(self, namespace: str = "tqflow") -> None:
        if not NAMESPACE_RE.match(namespace):
            raise ValueError(
                f"namespace {namespace!r} must be 1-64 characters of letters, digits, '_', '.', ':' or '-'"
            )
        self.namespace = namespace
        self.prefix = "{" + namespace + "}"
        self.delayed = f"{self.prefix}:delayed"
        self.delayed_wake = f"{self.prefix}:delayed:wake"
        self.dlq = f"{self.prefix}:dlq"
        self.runs = f"{self.prefix}:runs"
        self.flows = f"{self.prefix}:flows"
        self.queues = f"{self.prefix}:queues"
        self.group = GROUP

    def stream(self, queue: str, priority: int) -> str:
        return f"{self.prefix}:q:{queue}:{priority}"

    def streams(self, queue: str) -> list[str]:
        return [self.stream(queue, level) for level in range(len(PRIORITIES))]

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_done(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:done"

    def flow(self, name: str) -> str:
        return f"{self.prefix}:flow:{name}"

    # Observability (runtime/attempts.py, runtime/alerts.py) — additive.
    def attempts(self, job_id: str) -> str:
        """A capped list of one job's attempts (JSON), newest last."""
        return f"{self.prefix}:job:{job_id}:attempts"

    def alert_sent(self, kind: str, subject: str) -> str:
        """Set NX when an alert goes out, so several monitors send it once."""
        return f"{self.prefix}:alert:{kind}:{subject}"

    @property
    def alert_cursor(self) -> str:
        """A hash of how far the alert monitors have read (DLQ score, runs being watched)."""
        return f"{self.prefix}:alert:cursor"
