"""`tqc lsp`: the language server for editors (standard input and output)."""

from __future__ import annotations

import click


@click.command(name="lsp")
@click.option("--stdio", is_flag=True, help="Talk over standard input and output (the default; for editors).")
def lsp_command(stdio: bool) -> None:
    """Run the language server for .tqflow files (diagnostics, hover, definition, completion, fmt, rename)."""
    del stdio
    from tqflow.lsp.server import main  # pygls is imported only when the server runs

    main()


def register(group: click.Group) -> None:
    group.add_command(lsp_command)
