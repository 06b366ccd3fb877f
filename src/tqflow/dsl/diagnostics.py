"""Diagnostics: collected during parsing and checking, then rendered like rustc or as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tqflow.dsl.source import Source, Span


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Label:
    """A secondary span with a short message, drawn under its own source line."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    source: Source
    label: str = ""
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    @property
    def location(self) -> str:
        return f"{self.source.path}:{self.span.line}:{self.span.column}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.source.path,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "label": self.label,
            "labels": [
                {"line": lb.span.line, "column": lb.span.column, "message": lb.message} for lb in self.labels
            ],
            "notes": list(self.notes),
            "help": self.help,
        }


@dataclass
class Diagnostics:
    """A sink that passes append to; nothing is raised until the caller decides."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def error(self, code: str, message: str, span: Span, source: Source, **extra: Any) -> None:
        self.add(Diagnostic(code, Severity.ERROR, message, span, source, **extra))

    def warning(self, code: str, message: str, span: Span, source: Source, **extra: Any) -> None:
        self.add(Diagnostic(code, Severity.WARNING, message, span, source, **extra))

    def extend(self, more: Iterable[Diagnostic]) -> None:
        self.items.extend(more)

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(sorted(self.items, key=lambda d: (d.source.path, d.span.start, d.code)))

    def __len__(self) -> int:
        return len(self.items)


def render(diagnostic: Diagnostic) -> str:
    """Render one diagnostic the way rustc does: header, arrow, gutter, caret underline, notes, help."""
    d = diagnostic
    lines = [f"{d.severity.value}[{d.code}]: {d.message}"]
    gutter = len(str(max([d.span.line, *(lb.span.line for lb in d.labels)])))
    pad = " " * gutter
    lines.append(f"{pad}--> {d.location}")
    lines.append(f"{pad} |")
    marks = [(d.span, d.label, "^"), *((lb.span, lb.message, "-") for lb in d.labels)]
    shown_line = 0
    for span, message, char in sorted(marks, key=lambda m: (m[0].line, m[0].column)):
        text = d.source.line(span.line)
        width = span.end_column - span.column if span.end_line == span.line else len(text) - span.column + 1
        underline = " " * (span.column - 1) + char * max(1, width)
        if span.line != shown_line:  # several marks on one line share the source line
            lines.append(f"{span.line:>{gutter}} | {text}")
            shown_line = span.line
        lines.append(f"{pad} | {underline}{' ' + message if message else ''}".rstrip())
    lines.append(f"{pad} |")
    lines.extend(f"{pad} = note: {note}" for note in d.notes)
    if d.help:
        lines.append(f"{pad} = help: {d.help}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    items = list(diagnostics)
    body = "\n\n".join(render(d) for d in items)
    errors = sum(d.severity is Severity.ERROR for d in items)
    warnings = len(items) - errors
    summary = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    return f"{body}\n\n{summary}" if items else summary


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], indent=2)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` text naming the closest candidate, if any is close enough."""
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None
