"""The exit statuses of the ``quota`` command, and the one that answers each error.

Its own module, below every command: the parser prints ``EXIT_CODES`` under each command's help,
the commands return the statuses, and ``main`` maps an error to its status, all without
importing one another.
"""

from __future__ import annotations

from ..errors import (
    BackendError,
    CatalogError,
    ConfigError,
    CostError,
    QuotaError,
    UnknownPlanError,
)

#: Exit statuses a script can rely on.
EXIT_OK, EXIT_LIMITED, EXIT_USAGE, EXIT_BACKEND = 0, 1, 2, 3
EXIT_CODES = """exit status:
  0  success
  1  the answer is no: `usage` found the account at a limit (nothing left on it),
     `check` found an invalid plan file
  2  usage error or bad input: unknown option, plan, meter or catalog, bad amount, bad URL
  3  the storage backend failed or is unreachable"""


def exit_status(exc: QuotaError) -> int:
    """3 for a failing store, 2 for bad input, 1 for anything else quota refuses."""
    if isinstance(exc, BackendError):
        return EXIT_BACKEND
    if isinstance(exc, CatalogError | ConfigError | CostError | UnknownPlanError):
        return EXIT_USAGE
    return EXIT_LIMITED
