"""``FrozenMap``: a dict that cannot change and hashes by its items.

A ``Principal`` is frozen and hashable (the planner keys its templates by it), so the mappings
it carries (``groups``, ``overrides``) are frozen too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["FrozenMap", "freeze", "thaw"]


class FrozenMap(dict[K, V]):
    """A read-only dict, hashable by its items (values must be hashable: ``freeze`` them)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is frozen: build a new Principal to change it")

    __setitem__ = __delitem__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable

    def __repr__(self) -> str:
        return repr(dict(self))


def freeze(value: Any) -> Any:
    """``value`` with every mapping in it a ``FrozenMap`` and every list a tuple."""
    if isinstance(value, dict):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """``freeze`` undone: every mapping a dict and every tuple a list (plain JSON, or input
    for a new Principal to freeze again)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
