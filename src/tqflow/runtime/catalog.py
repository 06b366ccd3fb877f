"""The task catalog: what the workers run, published to Redis so producers that only know a task's name
get its own policies and can check its arguments.

Each worker writes, when it starts, one field per task it loaded in the hash `{ns}:tasks`: the task's
queue, priority, retry plan, timeout, deadline, dead-letter queue, payload version, codec and compression,
and its parameters
(name, whether required, a JSON schema of the annotation when pydantic can give one). A job sent by name
(`client.enqueue("mod.fn", …)`, `SyncClient`, `POST /jobs`) takes from there every policy the call does not
set, exactly as a job sent with the `Task` object does; its arguments are checked against the published
parameters (names, required ones, and the JSON types of the schema). A name no worker published is sent as
before by the Python clients (a worker may come later); the REST API refuses it (422) and so does `tqc jobs
submit` (exit 2, unless `--unregistered`), naming the closest published task.

Readers cache an entry for `CatalogCache.ttl` seconds (an unknown name for 1 s), so a producer sees a
redeployed worker's policies within that time, at one HGET per task and period.
"""

from __future__ import annotations

import difflib
import inspect
import json
import time
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from tqflow.plan import RetryPlan
from tqflow.runtime.limits import check_consistent, wire_of
from tqflow.runtime.store.keys import Keys
from tqflow.runtime.store.payloads import CODECS, COMPRESSIONS
from tqflow.runtime.task import Task
from tqflow.runtime.validation import ArgumentError

CACHE_TTL = 10.0
MISS_TTL = 1.0


def catalog_key(keys: Keys) -> str:
    """`{ns}:tasks` (store/keys.py `Keys.tasks`): a control key, one for the namespace whatever partition
    `keys` is."""
    return keys.tasks


def _schema(hint: Any) -> dict[str, Any] | None:
    if hint is Any:
        return None
    try:
        return TypeAdapter(hint).json_schema()
    except Exception:  # a type pydantic cannot describe: check the name only
        return None


def describe(task: Task[Any, Any], worker: str = "") -> dict[str, Any]:
    """What a worker publishes about one task."""
    o = task.options
    try:
        hints = typing.get_type_hints(task.fn, include_extras=True)
    except Exception:
        hints = {}
    params: list[dict[str, Any]] = []
    any_keyword = False
    for name, param in task.signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            any_keyword = True
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        params.append(
            {
                "name": name,
                "required": param.default is inspect.Parameter.empty,
                "schema": _schema(hints.get(name, Any)),
            }
        )
    return {
        "name": task.name,
        "queue": o.queue,
        "priority": o.priority,
        "retry": o.retry.model_dump(mode="json", exclude_defaults=True) if o.retry is not None else None,
        "timeout_ms": o.timeout_ms,
        "deadline_ms": o.deadline_ms,
        "dead_letter": o.dead_letter,
        "limits": wire_of(o.limits),
        "version": o.version,
        "executor": o.executor,
        "codec": o.codec,
        "compression": o.compression,
        "keep_result": o.keep_result,
        "params": params,
        "any_keyword": any_keyword,
        "worker": worker,
        "published": int(time.time() * 1000),
    }


async def publish(redis: Any, keys: Keys, tasks: Mapping[str, Task[Any, Any]], worker: str = "") -> None:
    """Write the worker's tasks to the catalog (each field overwritten: the latest worker wins).
    LimiterConflict when two of them define one limiter name differently."""
    check_consistent(
        (item.limiter.plan for t in tasks.values() for item in t.options.limits), " among the worker's tasks"
    )
    if tasks:
        await redis.hset(
            catalog_key(keys), mapping={name: json.dumps(describe(t, worker)) for name, t in tasks.items()}
        )


@dataclass(eq=False)  # hashed by identity: a builder's cache keys on the entry it was worked out from
class Published:
    """One task as a worker published it: the same policy attributes as `TaskOptions`."""

    name: str
    queue: str | None = None
    priority: str | None = None
    retry: RetryPlan | None = None
    timeout_ms: int | None = None
    deadline_ms: int | None = None
    dead_letter: str | None = None
    version: int = 1
    codec: str | None = None
    compression: str | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    any_keyword: bool = False
    limits: list[dict[str, Any]] = field(default_factory=list)  # the `lim` option its jobs carry
    keep_result: bool = True
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def limit_wire(self) -> list[dict[str, Any]]:
        return self.limits

    @classmethod
    def parse(cls, text: str | bytes) -> Published:
        data = json.loads(text)
        retry = data.get("retry")
        return cls(
            name=str(data["name"]),
            queue=data.get("queue"),
            priority=data.get("priority"),
            retry=RetryPlan.model_validate(retry) if retry is not None else None,
            timeout_ms=data.get("timeout_ms"),
            deadline_ms=data.get("deadline_ms"),
            dead_letter=data.get("dead_letter"),
            version=int(data.get("version") or 1),
            codec=_choice(data.get("codec"), CODECS),
            compression=_choice(data.get("compression"), COMPRESSIONS),
            params=list(data.get("params") or []),
            any_keyword=bool(data.get("any_keyword")),
            limits=list(data.get("limits") or []),
            keep_result=data.get("keep_result") is not False,
            raw=data,
        )

    def validate(self, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        """ArgumentError naming the parameter when `kwargs` cannot be this task's arguments."""
        problem = self.problem(kwargs)
        if problem is not None:
            message = problem[1]
            named = message.startswith(f"task `{self.name}`")  # missing or unknown names say whose already
            raise ArgumentError(message if named else f"task `{self.name}`, {message}")
        return kwargs

    def problem(self, kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
        """(field, message) for the first problem, or None: field is '' for a missing/unknown name."""
        known = {p["name"]: p for p in self.params}
        missing = sorted(p["name"] for p in self.params if p.get("required") and p["name"] not in kwargs)
        if missing:
            return missing[0], f"task `{self.name}` is missing argument {', '.join(missing)}"
        for name, value in kwargs.items():
            param = known.get(name)
            if param is None:
                if self.any_keyword:
                    continue
                taken = ", ".join(known) or "nothing"
                return name, f"task `{self.name}` has no parameter `{name}` (it takes: {taken})"
            schema = param.get("schema")
            if schema:
                wrong = schema_problem(schema, value, schema.get("$defs", {}), name)
                if wrong is not None:
                    return wrong[0], f"argument `{wrong[0]}`: {wrong[1]}"
        return None


def _choice(value: Any, known: Iterable[str]) -> str | None:
    """A published codec or compression this version knows (a newer worker's unknown one: unset)."""
    return value if isinstance(value, str) and value in known else None


JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def schema_problem(
    schema: Mapping[str, Any], value: Any, defs: Mapping[str, Any], where: str, depth: int = 0
) -> tuple[str, str] | None:
    """The first way `value` does not fit a JSON schema (the subset pydantic emits: type, enum, const,
    anyOf/oneOf/allOf, $ref, properties/required, items), as (path, message); None when it fits."""
    if depth > 32:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        return schema_problem(target, value, defs, where, depth + 1) if target else None
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            tried = [schema_problem(s, value, defs, where, depth + 1) for s in options]
            if all(t is not None for t in tried):
                return tried[0]
            return None
    found: tuple[str, str] | None
    for sub in schema.get("allOf") or []:
        found = schema_problem(sub, value, defs, where, depth + 1)
        if found is not None:
            return found
    if "const" in schema and value != schema["const"]:
        return where, f"must be {schema['const']!r} (got {value!r})"
    if "enum" in schema and value not in schema["enum"]:
        return where, f"must be one of {', '.join(map(repr, schema['enum']))} (got {value!r})"
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if kinds and not any(_is(k, value) for k in kinds):
        return where, f"must be of type {' or '.join(kinds)} (got {value!r})"
    if isinstance(value, dict):
        for name in schema.get("required") or []:
            if name not in value:
                return f"{where}.{name}", "is required"
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                found = schema_problem(sub, value[name], defs, f"{where}.{name}", depth + 1)
                if found is not None:
                    return found
    if isinstance(value, (list, tuple)) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found = schema_problem(schema["items"], item, defs, f"{where}[{index}]", depth + 1)
            if found is not None:
                return found
    return None


def _is(kind: str, value: Any) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    types = JSON_TYPES.get(kind)
    return types is None or isinstance(value, types)


class CatalogCache:
    """The catalog as producers read it: `cached(name)` without I/O; `load`/`load_sync` refresh the
    names about to be used when their entry is missing or old (one HMGET for all of them)."""

    def __init__(self, keys: Keys, ttl: float = CACHE_TTL) -> None:
        self.key = catalog_key(keys)
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Published | None]] = {}

    def cached(self, name: str) -> Published | None:
        hit = self._entries.get(name)
        return hit[1] if hit is not None else None

    def stale(self, names: Iterable[str]) -> list[str]:
        now = time.monotonic()
        out = []
        for name in dict.fromkeys(names):
            hit = self._entries.get(name)
            if hit is None or hit[0] <= now:
                out.append(name)
        return out

    def store(self, names: list[str], replies: list[Any]) -> None:
        now = time.monotonic()
        if len(self._entries) > 4096:
            self._entries.clear()
        for name, text in zip(names, replies, strict=True):
            entry = None
            if text is not None:
                try:
                    entry = Published.parse(text)
                except (ValueError, KeyError, TypeError):
                    entry = None
            self._entries[name] = (now + (self.ttl if entry is not None else MISS_TTL), entry)

    async def load(self, redis: Any, names: Iterable[str]) -> None:
        todo = self.stale(names)
        if todo:
            self.store(todo, list(await redis.hmget(self.key, todo)))

    def load_sync(self, redis: Any, names: Iterable[str]) -> None:
        todo = self.stale(names)
        if todo:
            self.store(todo, list(redis.hmget(self.key, todo)))


async def read_all(redis: Any, keys: Keys) -> dict[str, Published]:
    """Every published task (for the API and the dashboard)."""
    out = {}
    for name, text in (await redis.hgetall(catalog_key(keys))).items():
        try:
            out[str(name)] = Published.parse(text)
        except (ValueError, KeyError, TypeError):
            continue
    return out


def unregistered_message(name: str, published: Iterable[str]) -> str:
    """What to say of a task name no worker published: the closest published name, if one is close."""
    close = difflib.get_close_matches(name, sorted(published), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"no worker has registered a task `{name}`{hint}"


async def unregistered(redis: Any, keys: Keys, name: str) -> str | None:
    """None when some worker published `name`; else why not (see `unregistered_message`)."""
    if await redis.hexists(catalog_key(keys), name):
        return None
    return unregistered_message(name, await published_names(redis, keys))


async def published_names(redis: Any, keys: Keys) -> list[str]:
    """The names of every published task."""
    return [str(n) for n in await redis.hkeys(catalog_key(keys))]
