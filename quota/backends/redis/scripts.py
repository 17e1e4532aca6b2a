"""The Lua the Redis engine runs: the engine's script, its function library, rotation's script.

The engine's script is ``lua/arith.lua`` + ``algorithms.lua`` + ``states.lua`` + ``window.lua``
+ ``core.lua`` + ``commands.lua``: one SHA for every command, so a reload after NOSCRIPT
restores everything at once. Its function library (Redis 7 and later) is the same files up to
``core.lua``, then ``library.lua``: the acquire of a decision without a request id, called by
FCALL. Rotation's script, ``lua/rotate.lua``, is kept apart: it calls commands (TYPE, HGETALL,
DEL) that the engine's user does not need.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from importlib import resources

__all__ = ["ENGINE", "LIBRARY", "ROTATE", "Library", "Script", "script_sha"]


class Script:
    """One Lua program as Redis receives it: files of ``lua/`` joined, read at first use.

    ``sha`` is the name EVALSHA calls it by; ``text`` is what EVAL sends after NOSCRIPT."""

    def __init__(self, *files: str) -> None:
        self.files = files

    @cached_property
    def body(self) -> str:
        lua = resources.files(__package__) / "lua"
        return "\n".join((lua / name).read_text() for name in self.files)

    @property
    def text(self) -> str:
        return self.body

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()


class Library(Script):
    """A Redis function library (``FUNCTION LOAD``) of files of ``lua/``, whose last file
    defines ``quota_acquire``: library and function are named after the body's hash, so that
    gateways of two versions sharing a server each call their own."""

    @cached_property
    def version(self) -> str:
        return hashlib.sha1(self.body.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"quota_{self.version}"

    @property
    def function(self) -> str:
        """The name FCALL calls."""
        return f"quota_acquire_{self.version}"

    @cached_property
    def text(self) -> str:
        head = f"#!lua name={self.name}\n"
        return f"{head}{self.body}\nredis.register_function('{self.function}', quota_acquire)\n"


_SHARED = ("arith.lua", "algorithms.lua", "states.lua", "window.lua", "core.lua")
#: Every command a decision runs (acquire, settle, undo, peek, reset, top-up, batch).
ENGINE = Script(*_SHARED, "commands.lua")
#: The acquire of a decision without a request id, as a function (Redis 7 and later).
LIBRARY = Library(*_SHARED, "library.lua")
#: Secret rotation's snapshot and compare-and-delete (``quota.backends.redis.rotate``).
ROTATE = Script("rotate.lua")


def script_sha() -> str:
    """The engine script's SHA (what a server holds once it has loaded it)."""
    return ENGINE.sha
