"""The values of string and f-string literals, shared by both parser paths (the Lark builder and the
fast parser) so that they cannot read the same text two ways."""

from __future__ import annotations

import re

# The pieces of an f-string's body: `{{`, `}}`, an embedded `{expression}`, literal text, a lone brace.
FSTRING_PIECES = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[^{}]+|[{}]")


def unescape(raw: str) -> str:
    """Text with its backslash escapes read as Python reads them; UnicodeDecodeError for a bad escape."""
    return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
