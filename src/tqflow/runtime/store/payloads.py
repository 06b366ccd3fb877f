"""Payloads: a job's arguments and result as text, with a header that says how to read them.

`<codec><form><version>|<body>`: codec `J` (JSON), `M` (MessagePack) or `P` (pickle); version is the
task's payload schema version (empty: "the task's current one"); form says how the body is stored:

| form | body |
| --- | --- |
| `-` | JSON: the text itself; MessagePack or pickle: base64 (written before bodies were bytes; still read) |
| `z` | zlib, base64 (written before bodies were bytes; still read) |
| `b` | the bytes themselves (MessagePack, pickle) |
| `Z` | zlib-compressed bytes |
| `S` | zstd-compressed bytes |

Bytes travel as they are: connections decode replies as UTF-8 with `surrogateescape`
(runtime/connection.py), so a body's bytes read back as a str that encodes to the same bytes, and a str
written with the same error handler becomes those bytes again in Redis. A pickle body is
`<HMAC-SHA256 hex>|<bytes>`: it is only loaded when the signature verifies with the worker's key, so
nobody who can merely write to Redis can make a worker run code.

The size cap (`max_bytes`) applies to what a reader decodes (F16: a zip bomb), never only to what is stored.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import pickle
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgpack
import zstandard

from tqflow.errors import StoreError, UsageError
from tqflow.runtime.store import codec

CODECS = {"json": "J", "msgpack": "M", "pickle": "P"}
CODEC_NAMES = {tag: name for name, tag in CODECS.items()}
COMPRESSIONS = ("none", "zlib", "zstd")
FORMS = "-zbZS"
DEFAULT_MAX_BYTES = 1_000_000
# A body chosen to be compressed (`compression=`) is compressed when longer than this, and stored
# compressed only when that made it smaller; `compress_over` sets another threshold.
COMPRESS_OVER = 64
ZLIB_LEVEL = 6
ZSTD_LEVEL = 3  # docs/runtime.md "Payloads": level 3 beat zlib 6 on size and CPU on every payload measured
BYTES = ("utf-8", "surrogateescape")  # how a body's bytes are carried in a str (see the module doc)


class PayloadError(StoreError, ValueError):
    """A payload cannot be encoded or must not be decoded (unknown codec, bad signature, too large)."""


def check_choice(codec_name: str | None, compression: str | None, where: str = "") -> None:
    """ValueError naming the bad value when a codec or compression is not one tqflow has."""
    at = f"{where}: " if where else ""
    if codec_name is not None and codec_name not in CODECS:
        raise UsageError(f"{at}codec {codec_name!r} is not one of {', '.join(CODECS)}")
    if compression is not None and compression not in COMPRESSIONS:
        raise UsageError(f"{at}compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")


@dataclass(frozen=True)
class PayloadSettings:
    """How a process encodes payloads (it decodes whatever a payload's header says). `compression`:
    zlib, zstd or none; unset, a `compress_over` threshold alone means zlib (what it always meant)."""

    codec: str = "json"
    compress_over: int | None = None  # compress bodies longer than this many bytes
    signing_key: bytes | None = None  # required to write or read pickle
    max_bytes: int = DEFAULT_MAX_BYTES
    compression: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.codec, self.compression)
        if self.codec == "pickle" and not self.signing_key:
            raise UsageError("the pickle codec needs a signing key (TQFLOW_SIGNING_KEY)")

    @property
    def method(self) -> str | None:
        """The compression to use on long bodies: zlib, zstd or None."""
        if self.compression == "none":
            return None
        if self.compression is not None:
            return self.compression
        return "zlib" if self.compress_over is not None else None

    @property
    def threshold(self) -> int:
        return self.compress_over if self.compress_over is not None else COMPRESS_OVER

    def choose(self, codec_name: str | None, compression: str | None) -> PayloadSettings:
        """These settings with a task's or a job's own codec and compression (None: keep this one's)."""
        if codec_name in (None, self.codec) and compression in (None, self.compression):
            return self
        return _chosen(self, codec_name or self.codec, compression or self.compression)


@lru_cache(maxsize=64)
def _chosen(base: PayloadSettings, codec_name: str, compression: str | None) -> PayloadSettings:
    return dataclasses.replace(base, codec=codec_name, compression=compression)


DEFAULT = PayloadSettings()


def encode(value: Any, settings: PayloadSettings = DEFAULT, version: int | None = None) -> str:
    tag = CODECS[settings.codec]
    head_version = "" if version is None else str(version)
    method = settings.method
    text = ""
    if tag == "J":
        text = codec.encode(value)
        if method is None or len(text) <= settings.threshold:
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
    form = "b"
    if method is not None and len(raw) > settings.threshold:
        squeezed = zlib.compress(raw, ZLIB_LEVEL) if method == "zlib" else _zstd_compressor().compress(raw)
        if len(squeezed) < len(raw):  # else stored as it is: compressing made it no smaller
            raw, form = squeezed, ("Z" if method == "zlib" else "S")
    if tag == "J" and form == "b":
        return _capped(f"J-{head_version}|{text}", settings)
    head = f"{tag}{form}{head_version}|"
    if tag == "P":
        assert settings.signing_key is not None
        head += _sign(settings.signing_key, (tag + form).encode() + raw) + "|"
    if len(head) + len(raw) > settings.max_bytes:
        raise PayloadError(
            f"payload of {len(head) + len(raw)} bytes is over the limit of {settings.max_bytes}"
        )
    return head + raw.decode(*BYTES)


def decode(text: str | None, settings: PayloadSettings = DEFAULT) -> tuple[int | None, Any]:
    """The payload's schema version (None: current) and value. Raises PayloadError."""
    if text is None or text == "":
        return None, None
    if len(text) > settings.max_bytes:  # F8: a record written past the client's cap is refused here too
        raise PayloadError(f"payload of {len(text)} bytes is over the limit of {settings.max_bytes}")
    head, sep, body = text.partition("|")
    known = _heads.get(head) if sep else None
    if known is None:
        known = _head(head, sep)
    tag, form, version = known
    if tag == "J" and form == "-":
        return version, _json(body)
    raw = _body(tag, form, body, settings)
    try:
        if tag == "J":
            return version, json.loads(raw)
        if tag == "M":
            return version, msgpack.unpackb(raw, raw=False)
    except RecursionError as err:  # `[[[[…` nested past the interpreter's limit
        raise PayloadError(
            f"payload of {len(body)} characters nested too deeply (past the recursion limit)"
        ) from err
    return version, pickle.loads(raw)  # signature verified in _body


_heads: dict[str, tuple[str, str, int | None]] = {}  # the few headers a deployment writes, read once each
HEADS_KEPT = 256


def _head(head: str, sep: str) -> tuple[str, str, int | None]:
    """A header's codec tag, form and version. Raises PayloadError."""
    if not sep or len(head) < 2 or head[0] not in CODEC_NAMES or head[1] not in FORMS:
        raise PayloadError(f"not a tqflow payload (header {head[:12]!r})")
    try:
        version = int(head[2:]) if len(head) > 2 else None
    except ValueError as err:
        raise PayloadError(f"bad payload version {head[2:]!r}") from err
    if len(_heads) < HEADS_KEPT:
        _heads[head] = (head[0], head[1], version)
    return head[0], head[1], version


# the C scanner json.loads ends in, without its two whitespace scans (typeshed does not declare the attribute)
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json(body: str) -> Any:
    """A JSON body's value (an empty body: None). What the scanner does not read whole (spaces around
    the value, text after it, no value) goes to json.loads, which accepts or refuses it as it always did."""
    try:
        if not body:
            return None
        try:
            value, end = _scan(body, 0)
        except StopIteration:
            return json.loads(body)
        return value if end == len(body) else json.loads(body)
    except RecursionError as err:
        raise PayloadError(
            f"payload of {len(body)} characters nested too deeply (past the recursion limit)"
        ) from err


def _body(tag: str, form: str, body: str, settings: PayloadSettings) -> bytes:
    """A binary body's bytes, signature checked (pickle) and decompressed within the cap."""
    legacy = form in "-z"  # base64 bodies
    signature = ""
    if tag == "P":
        signature, sep, body = body.partition("|")
        if not settings.signing_key:
            raise PayloadError("refusing a pickle payload: this worker has no signing key")
        if not sep:
            raise PayloadError("refusing a pickle payload: its signature does not verify")
    try:
        raw = base64.b64decode(body, validate=True) if legacy else body.encode(*BYTES)
    except (ValueError, UnicodeError) as err:
        raise PayloadError(f"corrupt payload body: {err}") from err
    if tag == "P":
        assert settings.signing_key is not None
        signed = (tag + form + body).encode() if legacy else (tag + form).encode() + raw
        if not hmac.compare_digest(signature, _sign(settings.signing_key, signed)):
            raise PayloadError("refusing a pickle payload: its signature does not verify")
    try:
        if form in "zZ":
            return _inflate(raw, settings.max_bytes)
        if form == "S":
            return _unzstd(raw, settings.max_bytes)
    except zlib.error as err:
        raise PayloadError(f"corrupt payload body: {err}") from err
    return raw


def form_of(text: str | None) -> tuple[str, str] | None:
    """(codec name, compression) a stored payload says it is; None when it is not a payload."""
    if not text or len(text) < 3 or text[0] not in CODEC_NAMES or text[1] not in FORMS:
        return None
    compression = {"z": "zlib", "Z": "zlib", "S": "zstd"}.get(text[1], "none")
    return CODEC_NAMES[text[0]], compression


def _inflate(raw: bytes, limit: int) -> bytes:
    """zlib-decompress at most `limit` bytes (F16: 407 KB inflated to 300 MB before anything checked)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadError(f"payload decompresses past the limit of {limit} bytes")
    return out


def _unzstd(raw: bytes, limit: int) -> bytes:
    """zstd-decompress at most `limit` bytes: a frame that says it is larger is refused unread; one that
    says its size (what tqflow writes) is decompressed in one call into that many bytes; one that does not
    is read in steps that stop past the limit."""
    try:
        size = zstandard.frame_content_size(raw)
    except zstandard.ZstdError as err:
        raise PayloadError(f"corrupt payload body: {err}") from err
    if size > limit:  # -1: the frame does not say
        raise PayloadError(f"payload decompresses past the limit of {limit} bytes")
    out = bytearray()
    try:
        decompressor = _zstd_decompressor(limit)
        if size >= 0:  # the output buffer is the size the frame says, and decoding more is an error
            return decompressor.decompress(raw)
        with decompressor.stream_reader(raw) as reader:
            while len(out) <= limit:
                chunk = reader.read(min(1 << 16, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as err:
        if "too much memory" in str(err):  # its window is larger than the cap allows
            raise PayloadError(f"payload decompresses past the limit of {limit} bytes ({err})") from err
        raise PayloadError(f"corrupt payload body: {err}") from err
    if len(out) > limit:
        raise PayloadError(f"payload decompresses past the limit of {limit} bytes")
    return bytes(out)


_local = threading.local()


def _zstd_decompressor(limit: int) -> zstandard.ZstdDecompressor:
    """This thread's decompressor for a cap. Its window is what it allocates: no bigger than the cap (the
    frames tqflow writes have windows that fit their content), so a frame asking for a 2 GB window is
    refused instead of allocated."""
    window = 1 << max(10, min(31, (max(limit, 1) - 1).bit_length()))
    cache: dict[int, zstandard.ZstdDecompressor] = getattr(_local, "unzstd", None) or {}
    _local.unzstd = cache
    found = cache.get(window)
    if found is None:
        found = cache[window] = zstandard.ZstdDecompressor(max_window_size=window)
    return found


def _zstd_compressor() -> zstandard.ZstdCompressor:
    """This thread's compressor (one may not be used by two threads at once; making one costs a context)."""
    found: zstandard.ZstdCompressor | None = getattr(_local, "zstd", None)
    if found is None:
        found = _local.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return found


def value(text: str | None, settings: PayloadSettings = DEFAULT) -> Any:
    return decode(text, settings)[1]


def _capped(text: str, settings: PayloadSettings) -> str:
    if len(text) > settings.max_bytes:
        raise PayloadError(f"payload of {len(text)} bytes is over the limit of {settings.max_bytes}")
    return text


def _sign(key: bytes, signed: bytes) -> str:
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def _msgpack_default(value: Any) -> Any:
    return codec.to_json_type(value)
