"""`tqc`: the compiler and client. Each area registers its commands from its own `cli/*_commands.py`."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import click

import tqflow.cli
from tqflow.cli import exit_codes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow compiler and client: check, compile, deploy and run .tqflow files."""


# Every module named `*_commands` in this package has a `register(group)` function.
for _info in sorted(pkgutil.iter_modules(tqflow.cli.__path__), key=lambda m: m.name):
    if _info.name.endswith("_commands"):
        importlib.import_module(f"tqflow.cli.{_info.name}").register(cli)


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
