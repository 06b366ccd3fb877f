"""`tqc`: the compiler and client. Each area registers its commands from its own module."""

from __future__ import annotations

import click

from tqflow.cli import compile_commands, flow_commands, lang_commands, observe_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tqflow")
def cli() -> None:
    """tqflow compiler and client: check, compile, deploy and run .tqflow files."""


for area in (compile_commands, flow_commands, lang_commands):
    area.register(cli)
observe_commands.register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
