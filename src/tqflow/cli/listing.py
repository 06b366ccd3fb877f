"""What the list and show commands share: `--json`, and their output, a table (a line an item) or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def print_items(
    items: Sequence[T], as_json: bool, *, line: Callable[[T], str], as_dict: Callable[[T], Any], none: str
) -> None:
    """A list command's output: a JSON array, else a line an item (`none` when there is none)."""
    if as_json:
        click.echo(json.dumps([as_dict(item) for item in items], indent=2, default=str))
    elif not items:
        click.echo(none)
    else:
        for item in items:
            click.echo(line(item))


def print_item(item: T, as_json: bool, *, show: Callable[[T], None], as_dict: Callable[[T], Any]) -> None:
    """A show command's output: a JSON object, else `show` prints it for a reader."""
    if as_json:
        click.echo(json.dumps(as_dict(item), indent=2, default=str))
    else:
        show(item)
