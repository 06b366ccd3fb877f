"""The tqflow language server (`tqc lsp`): diagnostics as you type (the compiler's own, exactly what
`tqc check` prints), hover, go to definition into the task's Python function, completion, formatting
(`tqc fmt`) and rename of a job. It imports the compiler, never the runtime (no Redis)."""
