"""`tqc`: the compiler and client. Each area registers its commands from its own `cli/*_commands.py`."""

from __future__ import annotations

import importlib
import pkgutil

import click

import tqflow.cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow compiler and client: check, compile, deploy and run .tqflow files."""


# Every module named `*_commands` in this package has a `register(group)` function.
for _info in sorted(pkgutil.iter_modules(tqflow.cli.__path__), key=lambda m: m.name):
    if _info.name.endswith("_commands"):
        importlib.import_module(f"tqflow.cli.{_info.name}").register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
