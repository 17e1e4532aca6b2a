"""Rotating the hashing secret without losing budgets.

Account ids and API keys reach storage only as keyed hashes (``quota.keys``), so a new secret
names every account's state differently. ``rotate_secret`` moves each listed account's state
from the old names to the new ones: its windowed hash, its balances, its per-key fields (for
the API keys given) and its open reservation records (their contents name per-key fields too).

Per account, on Redis and Cluster: the old keys are read in one script call, written under the
new names, then deleted by a second script only if nothing changed them since the read (else
the account is copied again), so a decision made meanwhile with the old secret is never lost.
A fresh run after a completed one finds nothing left to move: it is safe to repeat. What is
copied overwrites what the new names hold: rotate before the gateways start using the new
secret. Per-key fields of keys not listed are dropped (those per-key budgets start afresh).
Global limits are not named by accounts and stay where they are; on Cluster a reservation's
global part is recorded under the account's old name and keeps its estimate.
"""

from __future__ import annotations

import heapq
import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends.memory import AsyncMemoryBackend, MemoryBackend
from .catalog import Catalog
from .errors import ConfigError
from .keys import account_slot, field_name

#: Reads every given key: per key ``{"h", pttl, field, value, ...}``, ``{"s", pttl, value}``
#: or ``{"n"}`` (missing).
_READ = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call("TYPE", key)["ok"]
  if kind == "hash" then
    local entry = {"h", redis.call("PTTL", key)}
    for _, x in ipairs(redis.call("HGETALL", key)) do entry[#entry + 1] = x end
    out[i] = entry
  elseif kind == "string" then
    out[i] = {"s", redis.call("PTTL", key), redis.call("GET", key)}
  else
    out[i] = {"n"}
  end
end
return out
"""

#: Deletes the keys when they still hold what ``_READ`` returned (ARGV: per key a count, then
#: that many strings: the hash's fields and values, or the string's value); 1 when deleted.
_DROP_IF_SAME = """
local at = 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  local now = {}
  local kind = redis.call("TYPE", key)["ok"]
  if kind == "hash" then now = redis.call("HGETALL", key)
  elseif kind == "string" then now = {redis.call("GET", key)} end
  if #now ~= n then return 0 end
  for j = 1, n do if now[j] ~= ARGV[at + j] then return 0 end end
  at = at + n + 1
end
redis.call("DEL", unpack(KEYS))
return 1
"""


@dataclass
class Rotation:
    """What ``rotate_secret`` moved."""

    accounts: int = 0  # accounts that had state under the old secret
    fields: int = 0  # hash fields moved (limits, balances, per-key budgets)
    records: int = 0  # reservation records moved
    dropped: list[str] = field(default_factory=list)  # per-key fields of keys not listed


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


def _rewrite(record: str, renames: dict[str, str]) -> str:
    """A reservation record with its per-key field names renamed (``,field,`` in charges,
    ``|field|`` in undo images: see lua/commands.lua)."""
    for old, new in renames.items():
        if old != new and "/" in old:
            record = record.replace(f",{old},", f",{new},").replace(f"|{old}|", f"|{new}|")
    return record


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
        from .backends import open_backend

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
) -> Rotation:
    """Move the state of ``accounts`` (``(account id, [its API keys])``) from names hashed with
    ``old_secret`` to names hashed with ``new_secret``.

    ``target`` is a ``Limiter``/``AsyncLimiter`` (its engine and catalog), a sync engine, or a
    storage URL (with ``catalog=``). Run it as a Redis user that may also run TYPE, HGETALL,
    SCAN and DEL; then start the gateways with ``Limiter(..., secret=new_secret)``."""
    engine, cat = _open(target, catalog)
    work = [
        (
            account_slot(a, old_secret),
            account_slot(a, new_secret),
            _renames(cat, k, old_secret, new_secret),
        )
        for a, k in accounts
    ]
    work = [w for w in work if w[0] != w[1]]
    report = Rotation()
    if isinstance(engine, MemoryBackend):
        for move in work:
            _memory(engine, *move, report)
        return report
    try:
        client, prefix = engine.client, engine.layout.prefix
        records = _records(client, prefix, {old for old, _, _ in work})
        for old, new, renames in work:
            _redis(client, prefix, old, new, renames, records.get(old, []), report)
    finally:
        if isinstance(target, str):  # opened here
            engine.close()
    return report


def _memory(
    engine: MemoryBackend, old: str, new: str, renames: dict[str, str], report: Rotation
) -> None:
    moved = False
    with engine._lock:  # the engine's own state, under its lock
        for (slot, name), (state, expiry) in list(engine._states.items()):
            if slot != old:
                continue
            del engine._states[(slot, name)]
            target = _renamed(name, renames)
            if target is None:
                report.dropped.append(name)
                continue
            engine._store((new, target), state, expiry, 0)
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


_GLOB = re.compile(r"([*?\[\]\\])")


def _records(client: Any, prefix: str, slots: set[str]) -> dict[str, list[str]]:
    """Reservation record keys per account slot (one SCAN of the keyspace, every node)."""
    out: dict[str, list[str]] = {}
    if not slots:
        return out
    pattern = _GLOB.sub(r"\\\1", prefix) + ":{a*}:r:*"
    for key in client.scan_iter(match=pattern, count=1000):
        slot = key[key.index("{") + 1 : key.index("}")]
        if slot in slots:
            out.setdefault(slot, []).append(key)
    return out


def _redis(
    client: Any,
    prefix: str,
    old: str,
    new: str,
    renames: dict[str, str],
    records: Sequence[str],
    report: Rotation,
) -> None:
    sources = [f"{prefix}:{{{old}}}", f"{prefix}:{{{old}}}:p", *records]
    targets = [f"{prefix}:{{{new}}}", f"{prefix}:{{{new}}}:p"]
    targets += [f"{prefix}:{{{new}}}{key[key.index('}') + 1 :]}" for key in records]
    for _ in range(100):  # copy again while decisions on the old names change them
        snapshot = client.eval(_READ, len(sources), *sources)
        if all(entry[0] == "n" for entry in snapshot):
            return
        fields = records_moved = 0
        dropped: list[str] = []
        expect: list[Any] = []
        for entry, target in zip(snapshot, targets, strict=True):
            kind, body = entry[0], list(entry[2:])
            expect += [len(body), *body]
            pttl = int(entry[1]) if kind != "n" else -2
            if kind == "h":
                mapping = {}
                for name, value in zip(body[::2], body[1::2], strict=True):
                    to = _renamed(name, renames)
                    if to is None:
                        dropped.append(name)
                    else:
                        mapping[to] = value
                if mapping:
                    client.hset(target, mapping=mapping)
                    fields += len(mapping)
                    current = int(client.pttl(target))
                    if pttl > 0 and (current == -1 or 0 < current < pttl):
                        client.pexpire(target, pttl)
            elif kind == "s" and pttl > 0:
                client.set(target, _rewrite(body[0], renames), px=pttl)
                records_moved += 1
        if client.eval(_DROP_IF_SAME, len(sources), *sources, *expect):
            report.accounts += 1
            report.fields += fields
            report.records += records_moved
            report.dropped += dropped
            return
    raise ConfigError(f"account slot {old!r} kept changing during the rotation: stop its traffic")
