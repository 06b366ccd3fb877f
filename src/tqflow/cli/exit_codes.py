"""Exit codes of `tqc` and `tqrun` (documented in docs/cli.md)."""

OK = 0
RUN_FAILED = 1  # the run ended failed or cancelled, or `tqc check` found errors
USAGE = 2  # bad command line (click's own code)
COMPILE_ERROR = 3  # the .tqflow file has errors (deploy/run/compile)
CONNECT_ERROR = 4  # Redis could not be reached or started
NOT_FOUND = 5  # a flow, run or job that does not exist
TIMEOUT = 6  # the run did not finish within --timeout
IMPORT_ERROR = 7  # a task module could not be imported by the worker
NOT_REPLICATED = 8  # submitted on the master, but fewer replicas than ?wait_replicas=N acknowledged it
