"""`tqc`: the compiler and client. Each area registers its commands from its own `cli/*_commands.py`."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from typing import Any

import click

import tqflow.cli
from tqflow.cli import exit_codes

# Where `tqc check` and `tqc fmt` live: looked in first, so that they never import the Redis client
# and the runtime (half of their start-up).
OFFLINE_COMMANDS = ("compile_commands", "lang_commands")


class LazyGroup(click.Group):
    """Every module named `*_commands` in this package has a `register(group)` function; a module is
    imported when a command is looked up and the modules imported so far do not have it (all of them
    for `--help`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = sorted(
            m.name for m in pkgutil.iter_modules(tqflow.cli.__path__) if m.name.endswith("_commands")
        )
        self.pending = [n for n in OFFLINE_COMMANDS if n in names] + [
            n for n in names if n not in OFFLINE_COMMANDS
        ]

    def load_next(self) -> None:
        importlib.import_module(f"tqflow.cli.{self.pending.pop(0)}").register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        while (command := super().get_command(ctx, cmd_name)) is None and self.pending:
            self.load_next()
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        while self.pending:
            self.load_next()
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow compiler and client: check, compile, deploy and run .tqflow files."""


def main() -> None:
    try:
        cli()
    except Exception as err:  # a bug: say so plainly, never a traceback (exit 3, like a compile error)
        click.echo(f"internal error, please report: {type(err).__name__}: {err}", err=True)
        click.echo("(set TQFLOW_DEBUG=1 to see the traceback)", err=True)
        if os.environ.get("TQFLOW_DEBUG"):
            raise
        sys.exit(exit_codes.COMPILE_ERROR)


if __name__ == "__main__":
    main()
