"""Between the compiler's positions (1-based line and column, counted in characters) and the protocol's
(0-based line, character counted in the negotiated encoding: UTF-16 code units unless the client offers
UTF-8 or UTF-32)."""

from __future__ import annotations

import bisect

from lsprotocol import types

from tqflow.dsl.source import Span


class LineIndex:
    """The lines of one text, to convert positions both ways."""

    def __init__(self, text: str, encoding: str = types.PositionEncodingKind.Utf16) -> None:
        self.text = text
        self.encoding = str(encoding)
        self.starts = [0]
        self.starts += [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line(self, number0: int) -> str:
        """Line `number0` (0-based) without its line break."""
        if not 0 <= number0 < len(self.starts):
            return ""
        start = self.starts[number0]
        end = self.starts[number0 + 1] - 1 if number0 + 1 < len(self.starts) else len(self.text)
        return self.text[start:end].removesuffix("\r")

    def units(self, chars: str) -> int:
        if self.encoding == types.PositionEncodingKind.Utf8:
            return len(chars.encode("utf-8", "surrogatepass"))
        if self.encoding == types.PositionEncodingKind.Utf32:
            return len(chars)
        return len(chars) + sum(1 for ch in chars if ord(ch) > 0xFFFF)

    def position(self, line: int, column: int) -> types.Position:
        """The protocol position of 1-based `line`, `column` (in characters)."""
        line0 = max(0, line - 1)
        text = self.line(line0)
        return types.Position(line=line0, character=self.units(text[: max(0, column - 1)]))

    def range(self, span: Span) -> types.Range:
        return types.Range(
            start=self.position(span.line, span.column), end=self.position(span.end_line, span.end_column)
        )

    def column(self, position: types.Position) -> int:
        """The 1-based character column of a protocol position."""
        text = self.line(position.line)
        units = 0
        for i, ch in enumerate(text):
            if units >= position.character:
                return i + 1
            units += self.units(ch)
        return len(text) + 1

    def offset(self, position: types.Position) -> int:
        """The character offset into the text of a protocol position."""
        if position.line >= len(self.starts):
            return len(self.text)
        return self.starts[position.line] + self.column(position) - 1

    def position_at(self, offset: int) -> types.Position:
        line0 = max(0, bisect.bisect_right(self.starts, offset) - 1)
        return self.position(line0 + 1, offset - self.starts[line0] + 1)

    def whole(self) -> types.Range:
        """The range of the whole text."""
        return types.Range(start=types.Position(line=0, character=0), end=self.position_at(len(self.text)))
