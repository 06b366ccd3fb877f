"""When this worker last heard from Redis, and the grace recovery keeps after a silence of its own.

Recovery judges a worker dead by its silence: no heartbeat for `dead_after`. A node that could not reach
Redis for about that long itself (Redis stopped, restarted slowly, or this host cut off) cannot tell a
dead worker from a live one that could not reach Redis either: every record and lease looks expired when
Redis answers again. So after such a silence it judges nobody for one more `dead_after`, long enough for
the live workers to heartbeat again; a worker that truly died is still recovered after that (F22)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("tqflow.cluster")


def silence_limit_ms(dead_after_ms: int, heartbeat_ms: int) -> int:
    """A silence this long may have let a live worker's record expire (it beats every heartbeat_ms)."""
    return max(heartbeat_ms, dead_after_ms - heartbeat_ms)


class Contact:
    def __init__(
        self, dead_after_ms: int, heartbeat_ms: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit_ms = silence_limit_ms(dead_after_ms, heartbeat_ms)
        self.grace_s = dead_after_ms / 1000
        self.clock = clock
        self.last_heard = clock()
        self.grace_until = 0.0

    def heard(self) -> None:
        """A heartbeat reached Redis."""
        now = self.clock()
        silent_ms = (now - self.last_heard) * 1000
        if silent_ms > self.limit_ms:
            self.grace_until = now + self.grace_s
            log.warning(
                "redis was out of reach longer than a worker may be silent: recovery waits for the live"
                " workers to heartbeat again",
                silent_s=round(silent_ms / 1000, 1),
                grace_s=self.grace_s,
            )
        self.last_heard = now

    def may_judge(self) -> bool:
        """Whether silences seen in Redis now are the workers' own (recovery may reclaim their jobs)."""
        now = self.clock()
        return (now - self.last_heard) * 1000 <= self.limit_ms and now >= self.grace_until
