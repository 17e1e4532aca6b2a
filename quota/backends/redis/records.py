"""Reservation records as ``lua/commands.lua`` writes them (``parse_record`` there), read and
written again by secret rotation (``quota.backends.redis.rotate``) with their fields renamed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple


class RecordedCharge(NamedTuple):
    """One charge of a reservation record, its numbers kept as the script wrote them."""

    store: str
    field: str
    code: str
    params: str
    anchor: str
    amount: str
    meter: str
    remaining: str
    reset: str
    retry: str


class UndoImage(NamedTuple):
    """A state before and after an acquire, kept to undo it exactly (Cluster, linked calls)."""

    store: str
    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Record:
    """A reservation record, as ``lua/commands.lua`` writes it (see ``parse_record`` there):
    ``expires,open,linked;charge;charge...[#image!image...]``, a charge's ten values joined by
    ``,`` and an image's four by ``|``. ``images`` is None when the record has no ``#`` part.

    Limit, meter and key-hash names hold none of ``,;#!|`` (``quota.limit.NAME``, URL-safe
    base64), and images keep states in their text form (``lua/states.lua``, ``as_text``), which
    holds none but ``,``: so ``encode_record(decode_record(raw)) == raw``.
    """

    expires: str
    open: str
    linked: str
    charges: tuple[RecordedCharge, ...]
    images: tuple[UndoImage, ...] | None

    def renamed(self, rename: Callable[[str], str]) -> Record:
        """The record with ``rename`` applied to the field of every charge and image."""
        charges = tuple(c._replace(field=rename(c.field)) for c in self.charges)
        images = self.images
        if images is not None:
            images = tuple(i._replace(field=rename(i.field)) for i in images)
        return Record(self.expires, self.open, self.linked, charges, images)


def decode_record(raw: str) -> Record:
    """A stored reservation record; ValueError when ``raw`` is not one."""
    main, hashed, undo = raw.partition("#")
    head, *charges = main.split(";")
    expires, is_open, linked = head.split(",")
    try:
        decoded = tuple(RecordedCharge(*c.split(",")) for c in charges)
        images = tuple(UndoImage(*i.split("|")) for i in undo.split("!")) if undo else ()
    except TypeError as exc:  # a charge or an image with the wrong number of values
        raise ValueError(f"not a reservation record: {raw!r}") from exc
    return Record(expires, is_open, linked, decoded, images if hashed else None)


def encode_record(record: Record) -> str:
    """The stored spelling of ``record`` (the inverse of ``decode_record``)."""
    head = ",".join((record.expires, record.open, record.linked))
    out = ";".join([head, *(",".join(c) for c in record.charges)])
    if record.images is not None:
        out += "#" + "!".join("|".join(i) for i in record.images)
    return out
