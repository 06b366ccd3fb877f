"""Source files and spans: every AST node and diagnostic points into a `Source` by a `Span`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A half-open range of characters, with 1-based line and column of both ends."""

    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def unknown() -> Span:
        return Span(0, 0, 1, 1, 1, 1)


@dataclass(frozen=True)
class Source:
    """The text of one `.tqflow` file and where it came from."""

    path: str
    text: str
    _lines: tuple[str, ...] = field(default=(), repr=False, compare=False)

    undecodable_at: int | None = field(default=None, compare=False)  # first character that was not UTF-8

    @staticmethod
    def from_file(path: str | Path) -> Source:
        return Source.from_bytes(str(path), Path(path).read_bytes())

    @staticmethod
    def from_bytes(path: str, data: bytes) -> Source:
        """Decode UTF-8 (a byte-order mark is dropped). Bytes that are not UTF-8 are replaced and the
        first one's position kept, so the parser reports it (TQ0003) instead of raising."""
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return Source(path, data.decode("utf-8"))
        except UnicodeDecodeError as err:
            before = data[: err.start].decode("utf-8", "replace")
            return Source(path, data.decode("utf-8", "replace"), undecodable_at=len(before))

    @property
    def directory(self) -> Path:
        return Path(self.path).resolve().parent

    def line(self, number: int) -> str:
        """The text of 1-based line `number`, without its newline ('' past the end)."""
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def span_at(self, offset: int, length: int = 1) -> Span:
        """A span for `length` characters from `offset`, with line and column computed."""
        line, column = self.position(offset)
        end_line, end_column = self.position(offset + length)
        return Span(offset, offset + length, line, column, end_line, end_column)

    def position(self, offset: int) -> tuple[int, int]:
        before = self.text[: max(0, offset)]
        line = before.count("\n") + 1
        column = offset - (before.rfind("\n") + 1) + 1
        return line, column
