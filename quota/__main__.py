"""`python -m quota`: the `quota` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
