"""How a fetch shares its free slots among the five priority levels.

Critical is read first, always. What critical leaves is shared by the other levels in proportion to
their weights, with a smooth weighted round-robin whose credits carry over between fetches (so the
shares hold exactly even when a fetch has one free slot). A level with nothing queued gives its share
to the others (the fetch script fills from the levels in priority order), so no slot stays idle;
batch is never starved while it has weight, and aging moves normal, low and batch entries that
waited past a bound to the critical level (see lua/age.lua).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tqflow.plan import LEVELS, PRIORITIES, Priority
from tqflow.runtime.store.keys import Keys, check_part


class FetchPlanner:
    def __init__(self, keys: Keys, queues: Sequence[str], weights: Mapping[str, int]) -> None:
        for name, weight in weights.items():
            if name not in PRIORITIES or Priority.parse(name) is Priority.CRITICAL:
                raise ValueError(f"weights are for {', '.join(PRIORITIES[1:])}; got {name!r}")
            if not isinstance(weight, int) or weight < 1:
                raise ValueError(f"the weight of {name} must be a positive integer, got {weight!r}")
        self.keys = keys
        self.queues = [check_part("queue name", q) for q in queues]
        self.weights = [(int(Priority.parse(n)), w) for n, w in weights.items()]
        self.total = sum(w for _, w in self.weights)
        self.credits = {level: 0 for level, _ in self.weights}
        self.turn = 0

    @property
    def all_streams(self) -> list[str]:
        return [self.keys.stream(q, level) for level in range(LEVELS) for q in self.queues]

    def shares(self, free: int) -> dict[int, int]:
        """How many of `free` slots each level below critical gets this time."""
        counts = {level: 0 for level, _ in self.weights}
        for _ in range(free):
            for level, weight in self.weights:
                self.credits[level] += weight
            best = max(self.credits, key=lambda level: (self.credits[level], -level))
            self.credits[best] -= self.total
            counts[best] += 1
        return counts

    def plan(self, free: int) -> list[tuple[str, int]]:
        """(stream, count) pairs for fetch.lua: critical first, then the weighted levels in level order.
        Queues take turns at being first, so several queues share fairly too."""
        counts = {0: free, **self.shares(free)}
        self.turn = (self.turn + 1) % len(self.queues)
        order = self.queues[self.turn :] + self.queues[: self.turn]
        return [
            (self.keys.stream(queue, level), counts.get(level, 0))
            for level in range(LEVELS)
            for queue in order
        ]
