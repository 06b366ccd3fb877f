"""Payloads: a job's arguments and result as text, with a header that says how to read them.

`<codec><compression><version>|<body>`: codec `J` (JSON), `M` (MessagePack) or `P` (pickle); compression
`-` (none) or `z` (zlib); version is the task's payload schema version (empty: "the task's current one").
JSON bodies without compression are plain text; binary bodies (MessagePack, pickle, compressed) are
base64 (connections decode replies as UTF-8). A pickle body is `<HMAC-SHA256 hex>|<base64>`: it is only
loaded when the signature verifies with the worker's key, so nobody who can merely write to Redis can
make a worker run code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

from tqflow.errors import StoreError
from tqflow.runtime.store import codec

CODECS = {"json": "J", "msgpack": "M", "pickle": "P"}
DEFAULT_MAX_BYTES = 1_000_000


class PayloadError(StoreError, ValueError):
    """A payload cannot be encoded or must not be decoded (unknown codec, bad signature, too large)."""


@dataclass(frozen=True)
class PayloadSettings:
    codec: str = "json"
    compress_over: int | None = None  # compress bodies longer than this many bytes
    signing_key: bytes | None = None  # required to write or read pickle
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {', '.join(CODECS)}")
        if self.codec == "pickle" and not self.signing_key:
            raise ValueError("the pickle codec needs a signing key (TQFLOW_SIGNING_KEY)")


DEFAULT = PayloadSettings()


def encode(value: Any, settings: PayloadSettings = DEFAULT, version: int | None = None) -> str:
    tag = CODECS[settings.codec]
    head_version = "" if version is None else str(version)
    if tag == "J":
        text = codec.encode(value)
        if settings.compress_over is None or len(text) <= settings.compress_over:
            return _capped(f"J-{head_version}|{text}", settings)
        raw = text.encode()
    elif tag == "M":
        raw = msgpack.packb(value, default=_msgpack_default, use_bin_type=True)
    else:
        raw = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    # F16: the cap applies to what a reader decodes, not only to the text stored
    if len(raw) > settings.max_bytes:
        raise PayloadError(
            f"payload of {len(raw)} bytes (before compression) is over the limit of {settings.max_bytes}"
        )
    compression = "-"
    if settings.compress_over is not None and len(raw) > settings.compress_over:
        raw, compression = zlib.compress(raw, 6), "z"
    body = base64.b64encode(raw).decode()
    if tag == "P":
        assert settings.signing_key is not None
        body = f"{_sign(settings.signing_key, tag + compression + body)}|{body}"
    return _capped(f"{tag}{compression}{head_version}|{body}", settings)


def decode(text: str | None, settings: PayloadSettings = DEFAULT) -> tuple[int | None, Any]:
    """The payload's schema version (None: current) and value. Raises PayloadError."""
    if text is None or text == "":
        return None, None
    if len(text) > settings.max_bytes:  # F8: a record written past the client's cap is refused here too
        raise PayloadError(f"payload of {len(text)} bytes is over the limit of {settings.max_bytes}")
    head, sep, body = text.partition("|")
    if not sep or len(head) < 2 or head[0] not in "JMP" or head[1] not in "-z":
        raise PayloadError(f"not a tqflow payload (header {head[:12]!r})")
    tag, compression = head[0], head[1]
    try:
        version = int(head[2:]) if len(head) > 2 else None
    except ValueError as err:
        raise PayloadError(f"bad payload version {head[2:]!r}") from err
    if tag == "J" and compression == "-":
        return version, json.loads(body) if body else None
    signature = ""
    if tag == "P":
        signature, sep, body = body.partition("|")
        if not settings.signing_key:
            raise PayloadError("refusing a pickle payload: this worker has no signing key")
        expected = _sign(settings.signing_key, tag + compression + body)
        if not sep or not hmac.compare_digest(signature, expected):
            raise PayloadError("refusing a pickle payload: its signature does not verify")
    try:
        raw = base64.b64decode(body, validate=True)
        if compression == "z":
            raw = _inflate(raw, settings.max_bytes)
    except PayloadError:
        raise
    except (ValueError, zlib.error) as err:
        raise PayloadError(f"corrupt payload body: {err}") from err
    try:
        if tag == "J":
            return version, json.loads(raw)
        if tag == "M":
            return version, msgpack.unpackb(raw, raw=False)
    except RecursionError as err:  # `[[[[…` nested past the interpreter's limit
        raise PayloadError("payload nested too deeply") from err
    return version, pickle.loads(raw)  # signature verified above


def _inflate(raw: bytes, limit: int) -> bytes:
    """zlib-decompress at most `limit` bytes (F16: 407 KB inflated to 300 MB before anything checked)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadError(f"payload decompresses past the limit of {limit} bytes")
    return out


def value(text: str | None, settings: PayloadSettings = DEFAULT) -> Any:
    return decode(text, settings)[1]


def _capped(text: str, settings: PayloadSettings) -> str:
    if len(text) > settings.max_bytes:
        raise PayloadError(f"payload of {len(text)} bytes is over the limit of {settings.max_bytes}")
    return text


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _msgpack_default(value: Any) -> Any:
    return codec.to_json_type(value)
