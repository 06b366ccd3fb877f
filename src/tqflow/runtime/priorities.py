"""How a fetch shares its free slots among the five priority levels.

Every level has a weight (default critical 32, high 8, normal 4, low 2, batch 1; `CRITICAL_WEIGHT` when the
worker's weights do not name critical) and a smooth weighted round-robin whose credits carry over between
fetches gives each level its share, so the shares hold exactly even when a fetch has one free slot. A level
with nothing queued gives its share to the others (the fetch script fills from the levels in priority
order), so no slot stays idle. The round-robin is periodic (period S = the sum of the weights, whatever is
queued), so a level of weight w is picked at least once in every ceil(S / w) consecutive slot assignments
of a worker: the starvation bound of docs/runtime.md. A critical weight of 0 restores "critical first,
always" (then only aging bounds what waits below it: lua/age.lua).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tqflow.errors import SettingError
from tqflow.plan import LEVELS, PRIORITIES, Priority
from tqflow.runtime.store.keys import Keys, check_part

CRITICAL_WEIGHT = 32  # critical's share when the weights do not say: 32 of 47 slots under full load
PERIOD_CAP = 4096  # weights summing past this are run slot by slot rather than kept as a period


class FetchPlanner:
    def __init__(self, keys: Keys, queues: Sequence[str], weights: Mapping[str, int]) -> None:
        for name, weight in weights.items():
            if name not in PRIORITIES:
                raise SettingError(f"weights are for {', '.join(PRIORITIES)}; got {name!r}")
            critical = Priority.parse(name) is Priority.CRITICAL
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < (0 if critical else 1):
                least = "0 (always first) or more" if critical else "a positive integer"
                raise SettingError(f"the weight of {name} must be {least}, got {weight!r}")
        self.keys = keys
        self.queues = [check_part("queue name", q) for q in queues]
        named = {int(Priority.parse(n)): w for n, w in weights.items()}
        named.setdefault(int(Priority.CRITICAL), CRITICAL_WEIGHT)
        self.strict = named[int(Priority.CRITICAL)] == 0  # critical first, always
        self.weights = sorted((level, w) for level, w in named.items() if w > 0)
        self.total = sum(w for _, w in self.weights)
        self.credits = {level: 0 for level, _ in self.weights}  # the round-robin slot by slot (huge weights)
        self._prefix = self._period() if self.total <= PERIOD_CAP else []
        self.step = 0  # where the next fetch's picks start in the period
        self.turn = 0

    def bound(self, level: int) -> int | None:
        """The most consecutive slot assignments of one worker (serving one queue) in which `level` gets
        none: the longest gap of the round-robin, exact (it is periodic: two periods of S picks show every
        gap), at most 2 * ceil(S / w). None when nothing bounds it (below critical when critical is first,
        always)."""
        weights = dict(self.weights)
        if self.strict and level != int(Priority.CRITICAL):
            return None
        if level not in weights:
            return 1  # critical of weight 0: the first slot
        credits = {lv: 0 for lv in weights}
        last, gap = -1, 0
        for i in range(2 * self.total):
            for lv, w in weights.items():
                credits[lv] += w
            best = max(credits, key=lambda lv: (credits[lv], -lv))
            credits[best] -= self.total
            if best == level:
                gap, last = max(gap, i - last), i
        return gap

    @property
    def all_streams(self) -> list[str]:
        return [self.keys.stream(q, level) for level in range(LEVELS) for q in self.queues]

    def shares(self, free: int) -> dict[int, int]:
        """How many of `free` slots each weighted level gets this time: the next `free` picks of the
        round-robin. It is periodic (each level picked `w` times in every `S` picks, the credits back where
        they started), so one period is computed once and a fetch costs a few lookups, not a loop a slot."""
        if not self.weights:
            return {}
        if not self._prefix:
            return self._one_by_one(free)
        cycles, rest = divmod(free, self.total)
        start, end = self.step, self.step + rest
        self.step = end % self.total
        return {
            level: cycles * weight + (prefix[end] - prefix[start])
            for (level, weight), prefix in zip(self.weights, self._prefix, strict=True)
        }

    def _one_by_one(self, free: int) -> dict[int, int]:
        counts = {level: 0 for level, _ in self.weights}
        for _ in range(free):
            for level, weight in self.weights:
                self.credits[level] += weight
            best = max(self.credits, key=lambda level: (self.credits[level], -level))
            self.credits[best] -= self.total
            counts[best] += 1
        return counts

    def _period(self) -> list[list[int]]:
        """For each weighted level (in `weights` order), how many of the first `i` picks of two periods
        of the round-robin chose it."""
        credits = {level: 0 for level, _ in self.weights}
        prefix = [[0] for _ in self.weights]
        for _ in range(2 * self.total):
            for level, weight in self.weights:
                credits[level] += weight
            best = max(credits, key=lambda level: (credits[level], -level))
            credits[best] -= self.total
            for (level, _), counts in zip(self.weights, prefix, strict=True):
                counts.append(counts[-1] + (level == best))
        return prefix

    def plan(self, free: int) -> list[tuple[str, int]]:
        """(stream, count) pairs for fetch.lua: the levels in level order with their shares (critical takes
        every slot first when its weight is 0). Queues take turns at being first, so several queues share
        fairly too."""
        counts = {0: free, **self.shares(free)} if self.strict else self.shares(free)
        self.turn = (self.turn + 1) % len(self.queues)
        order = self.queues[self.turn :] + self.queues[: self.turn]
        return [
            (self.keys.stream(queue, level), counts.get(level, 0))
            for level in range(LEVELS)
            for queue in order
        ]
