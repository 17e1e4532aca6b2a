"""Rotating the hashing secret without losing budgets.

Account ids and API keys reach storage only as keyed hashes (``quota.keys``), so a new secret
names every account's state differently. ``rotate_secret`` moves each listed account's state
from the old names to the new ones: its windowed hash, its balances, its usage history, its
per-key fields (for the API keys given) and its open reservation records (their contents name
per-key fields too).

This module decides what moves where (old and new slots, the new name of every field) and moves
it on the memory engine; on Redis and Cluster the moving is ``quota.backends.redis.rotate``'s:
per account, the old keys are read in one script call, written under the new names, then
deleted by a second script only if nothing changed them since the read (else the account is
copied again), so a decision made meanwhile with the old secret is never lost. A fresh run after
a completed one finds nothing left to move: it is safe to repeat. What is copied overwrites what
the new names hold: rotate before the gateways start using the new secret. Per-key fields of
keys not listed are dropped (those per-key budgets start afresh). Groups (an org's shared limits
and pooled credits) move when listed, like accounts. Global limits are not named by accounts and
stay where they are; on Cluster a reservation's global part is recorded under the
account's old name and keeps its estimate.
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .backends import open_backend
from .backends.memory import AsyncMemoryBackend, MemoryBackend
from .catalog import Catalog
from .errors import ConfigError
from .keys import account_slot, field_name, group_slot


@dataclass
class Rotation:
    """What ``rotate_secret`` moved."""

    accounts: int = 0  # accounts (and groups) that had state under the old secret
    fields: int = 0  # hash fields moved (limits, balances, usage history, per-key budgets)
    records: int = 0  # reservation records moved
    dropped: list[str] = field(default_factory=list)  # per-key fields of keys not listed


#: One account's move: its old slot, its new slot, and old -> new per-key field names.
_Work = tuple[str, str, dict[str, str]]


def _renames(catalog: Catalog, keys: Iterable[str], old: bytes, new: bytes) -> dict[str, str]:
    """Old -> new field name of every per-key limit of the catalog, for each key."""
    scoped = {
        lim.name for plan in catalog.plans.values() for lim in plan.limits if lim.scope == "key"
    }
    out = {}
    for key in keys:
        for name in scoped:
            out[field_name(name, "key", key, old)] = field_name(name, "key", key, new)
    return out


def _renamed(name: str, renames: dict[str, str]) -> str | None:
    """A field's new name: per-key fields (``limit/<key hash>``) as mapped, or None when their
    key was not listed; account fields (limits, balances, usage history) keep theirs."""
    return renames.get(name) if "/" in name else name


def _open(target: Any, catalog: Catalog | str | None) -> tuple[Any, Catalog]:
    """(engine, catalog) from a limiter, an engine or a storage URL."""
    cat = getattr(target, "catalog", None)
    if catalog is not None:
        cat = catalog if isinstance(catalog, Catalog) else Catalog.load(catalog)
    if cat is None:
        raise ConfigError("rotate_secret needs the catalog: pass catalog=... (or a limiter)")
    engine = getattr(target, "backend", target)
    engine = getattr(engine, "primary", engine)  # behind the failure guard
    if isinstance(engine, str):
        if engine.startswith("memory"):
            raise ConfigError("a memory:// engine lives in its limiter: pass the limiter itself")
        engine = open_backend(engine)
    if isinstance(engine, AsyncMemoryBackend):
        engine = engine.engine
    if inspect.iscoroutinefunction(getattr(engine, "acquire", None)):
        raise ConfigError("rotate_secret runs blocking: pass the storage URL, not an AsyncLimiter")
    return engine, cat


def rotate_secret(
    target: Any,
    old_secret: bytes,
    new_secret: bytes,
    accounts: Iterable[tuple[str, Iterable[str]]],
    *,
    catalog: Catalog | str | None = None,
    groups: Iterable[tuple[str, str]] = (),
) -> Rotation:
    """Move the state of ``accounts`` (``(account id, [its API keys])``) and of ``groups``
    (``(kind, name)``, e.g. ``("org", "acme")``: their shared limits and pooled balances) from
    names hashed with ``old_secret`` to names hashed with ``new_secret``.

    ``target`` is a ``Limiter``/``AsyncLimiter`` (its engine and catalog), a sync engine, or a
    storage URL (with ``catalog=``). Run it as a Redis user that may also run TYPE, HGETALL,
    SCAN and DEL; then start the gateways with ``Limiter(..., secret=new_secret)``."""
    engine, cat = _open(target, catalog)
    work: list[_Work] = [
        (
            account_slot(a, old_secret),
            account_slot(a, new_secret),
            _renames(cat, k, old_secret, new_secret),
        )
        for a, k in accounts
    ]
    work += [(group_slot(kind, name, old_secret), group_slot(kind, name, new_secret), {})
             for kind, name in groups]  # fmt: skip
    work = [w for w in work if w[0] != w[1]]
    report = Rotation()
    try:
        if isinstance(engine, MemoryBackend):
            for old, new, renames in work:
                _memory(engine, old, new, renames, report)
        else:
            _redis(engine, work, report)
    finally:
        if isinstance(target, str):  # opened here
            engine.close()
    return report


def _memory(
    engine: MemoryBackend, old: str, new: str, renames: dict[str, str], report: Rotation
) -> None:
    """One account's move on the memory engine, under its lock (nothing runs meanwhile)."""
    moved = False
    with engine._lock:  # the engine's own state, under its lock
        for slot, name in list(engine._states):
            if slot != old:
                continue
            target = _renamed(name, renames)
            if target is None:
                del engine._states[(slot, name)]
                report.dropped.append(name)
                continue
            engine._states.move((slot, name), (new, target))
            report.fields += 1
            moved = True
        for (slot, rid), rec in list(engine._records.items()):
            if slot != old:
                continue
            del engine._records[(slot, rid)]
            rec.charges = tuple(
                c._replace(slot=new, field=renames.get(c.field, c.field)) if c.slot == old else c
                for c in rec.charges
            )
            fields = tuple(renames.get(f, f) for f in rec.verdict.fields)
            rec.verdict = rec.verdict._replace(fields=fields)
            engine._records[(new, rid)] = rec
            engine._record_heap.append((rec.expires, (new, rid)))
            report.records += 1
            moved = True
        heapq.heapify(engine._record_heap)
    report.accounts += moved


def _redis(engine: Any, work: list[_Work], report: Rotation) -> None:
    """The moves on Redis or Cluster: one SCAN for every record, then one account at a time."""
    # The [redis] extra, imported only to rotate a Redis store: memory users need no redis-py.
    from .backends.redis import RedisBackend
    from .backends.redis.rotate import move_account, record_keys

    if not isinstance(engine, RedisBackend):
        kind = type(engine).__name__
        raise ConfigError(f"rotate_secret moves memory:// and Redis state, not {kind}'s")
    records = record_keys(engine, {old for old, _, _ in work})
    for old, new, renames in work:
        rename = partial(_renamed, renames=renames)
        moved = move_account(engine, old, new, rename, records.get(old, []))
        if moved is not None:
            report.accounts += 1
            report.fields += moved.fields
            report.records += moved.records
            report.dropped += moved.dropped
