"""Packing commands for redis-py's asyncio connections with hiredis' C packer.

redis-py's sync connections pack with hiredis when it is installed; its asyncio ones pack in Python, one
encode and one buffer copy per argument. A worker's batched finish sends ~9 arguments per job: that
packing was ~13 µs of worker CPU per job, hiredis' ~2 µs. The bytes are the same; anything hiredis does
not pack exactly as redis-py would (a str carrying bytes as surrogate escapes, a bool, an int subclass,
an encoding other than UTF-8, a command name with a space) goes to redis-py's own packer, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection

hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as hiredis_pack
except ImportError:  # redis-py works without hiredis; so does this
    hiredis_pack = None

UTF8 = ("utf-8", "utf8")


class HiredisPacking:
    """A mixin for a `redis.asyncio` connection class (before it in the bases)."""

    encoder: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if (
            hiredis_pack is not None
            and type(first) is str
            and " " not in first
            and self.encoder.encoding.lower() in UTF8
        ):
            try:
                return [hiredis_pack(args)]
            except (TypeError, UnicodeEncodeError):
                pass  # redis-py's packer encodes (or refuses) it as it always did
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed


def packing_class(base: type[Any]) -> type[Any]:
    """`base` with hiredis packing (itself when it packs so already, or hiredis is missing)."""
    if hiredis_pack is None or issubclass(base, HiredisPacking):
        return base
    return type(f"Packed{base.__name__}", (HiredisPacking, base), {})


def pack_with_hiredis(client: Any) -> None:
    """Let the new connections of an asyncio client made by the caller pack with hiredis, as `connect`'s
    do (a client without a connection pool, a cluster client, is left as it is)."""
    pool = getattr(client, "connection_pool", None)
    base = getattr(pool, "connection_class", None)
    if isinstance(base, type) and issubclass(base, AbstractConnection):
        pool.connection_class = packing_class(base)  # type: ignore[union-attr]
