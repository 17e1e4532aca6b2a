"""The ``quota`` command: ``demo``, ``plans``, ``check``, ``serve``, and the operator's
``usage``, ``reset``, ``top-up`` and ``simulate``; and everything only the command uses.

``main`` parses (``parser``), runs the command's ``cmd_*`` function from its module and turns a
``QuotaError`` into ``quota: error: <message>`` and an exit status (``exits``). The modules:
``plans`` (a catalog as text, ``check``), ``demo`` (a scripted tour), ``serve`` (a demo gateway
around the stand-in LLM ``upstream``), ``operate`` (``usage``/``reset``/``top-up``),
``simulate`` (the command) over ``simulation`` (the virtual-time run) and ``plot`` (its chart),
and ``tables`` (aligned text tables).

The core install runs it (argparse, standard library); ``serve`` needs the ``server`` extra
(uvicorn), ``serve --metrics`` the ``metrics`` extra, ``simulate --plot`` the ``plot`` extra
(matplotlib): each is imported only where it is used. ``import quota`` never imports this
package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import QuotaError
from .demo import cmd_demo
from .exits import EXIT_USAGE, exit_status
from .operate import cmd_reset, cmd_top_up, cmd_usage
from .parser import build_parser
from .plans import cmd_check, cmd_plans
from .serve import cmd_serve
from .simulate import cmd_simulate

__all__ = ["COMMANDS", "build_parser", "main"]

#: Each command's function: it gets the parsed arguments and returns the exit status.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "plans": cmd_plans,
    "check": cmd_check,
    "serve": cmd_serve,
    "usage": cmd_usage,
    "reset": cmd_reset,
    "top-up": cmd_top_up,
    "simulate": cmd_simulate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``quota`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()
    except QuotaError as exc:
        print(f"quota: error: {exc}", file=sys.stderr)
        return exit_status(exc)
    except BrokenPipeError:  # e.g. `quota plans | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
