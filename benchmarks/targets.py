"""The issue's targets, checked against one run's measurements."""

from __future__ import annotations

from dataclasses import dataclass, field

from .blocked import ALLOWED
from .memory import Usage
from .timing import Result


def _get(results: list[Result], name: str) -> Result | None:
    return next((r for r in results if r.name == name), None)


def _commands(r: Result) -> int:
    return int(r.extra.split(" ", 1)[0].replace(",", "")) if r.extra[:1].isdigit() else -1


@dataclass
class Targets:
    zylo: dict[str, list[Result]] = field(default_factory=dict)
    floor: Result | None = None
    concurrent: dict[str, list[Result]] = field(default_factory=dict)
    blocked: dict[str, list[Result]] = field(default_factory=dict)
    accuracy: float | None = None
    memory: list[Usage] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, goal, measured, passed or None when not run)."""
        out: list[tuple[str, str, str, bool | None]] = []
        redis = self.zylo.get("redis", [])
        q = _get(redis, "quota")
        peers = [r for r in redis if r.name.startswith("limits")]
        if q and peers:
            best = max(peers, key=lambda r: r.rate)
            ratio = q.rate / best.rate
            what = f"{ratio:.2f}x (fastest limits strategy: {best.name[8:-1]})"
            out.append(("Zylo basic, Redis, sync vs limits", ">= 4x", what, ratio >= 4))
        if q and self.floor:
            ratio = q.rate / self.floor.rate
            out.append(
                (
                    "Zylo basic, Redis, sync vs EVALSHA floor",
                    ">= 0.8x",
                    f"{ratio:.2f}x",
                    ratio >= 0.8,
                )
            )
        conc = self.concurrent.get("redis", [])
        a, u = _get(conc, "quota"), _get(conc, "quota, batch=false")
        if a and u:
            ratio = a.rate / u.rate
            out.append(
                ("Async 64 callers, batched vs unbatched", ">= 3x", f"{ratio:.2f}x", ratio >= 3)
            )
        mem = self.zylo.get("memory", [])
        q = _get(mem, "quota")
        peers = [r for r in mem if r.name != "quota" and not r.name.startswith("floor")]
        if q and peers:
            best = max(peers, key=lambda r: r.rate)
            ratio = q.rate / best.rate
            what = f"{ratio:.2f}x (fastest peer: {best.name})"
            out.append(("Zylo basic, memory vs fastest peer", ">= 2x", what, ratio >= 2))
        blk = self.blocked.get("redis", [])
        allowed = _get(blk, ALLOWED)
        cached = next((r for r in blk if r.name == "quota" or r.name.startswith("quota (")), None)
        if allowed and cached:
            ratio = cached.rate / allowed.rate
            commands = _commands(cached)
            what = f"{ratio:.1f}x, {commands} Redis commands"
            out.append(
                (
                    "Blocked client, Redis",
                    ">= 10x allowed, 0 commands",
                    what,
                    ratio >= 10 and commands == 0,
                )
            )
        if self.accuracy is not None:
            out.append(
                (
                    "Accuracy: worst trailing window",
                    "<= 1.00x",
                    f"{self.accuracy:.2f}x",
                    self.accuracy <= 1.0,
                )
            )
        ours = [u for u in self.memory if u.name.startswith("quota")]
        if ours:
            # The peers keep no usage history: compare the same limits (history off).
            q_bytes = ours[-1].bytes
            smallest = min(
                (u for u in self.memory if not u.name.startswith("quota")), key=lambda u: u.bytes
            )
            what = (
                f"{q_bytes:,} B for the same limits ({ours[0].bytes:,} B with 31 days of usage"
                f" history) vs smallest peer {smallest.bytes:,} B ({smallest.name})"
            )
            out.append(
                ("Redis memory per account", "below every peer", what, q_bytes < smallest.bytes)
            )
        return out

    def render(self) -> str:
        rows = self.rows()
        if not rows:
            return "(none of the parts run measures a target)"
        lines = ["| target | goal | measured | result |", "|---|---|---|---|"]
        for target, goal, measured, ok in rows:
            lines.append(f"| {target} | {goal} | {measured} | {'PASS' if ok else 'MISS'} |")
        return "\n".join(lines)
