"""`python -m tqflow.lsp`: the language server on standard input and output (the same as `tqc lsp`)."""

from tqflow.lsp.server import main

main()
