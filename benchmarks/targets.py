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


def _fixed(results: list[Result]) -> Result | None:
    """``limits``' fixed window, the peer each ratio is taken against."""
    return next((r for r in results if r.name.startswith("limits") and "fixed" in r.name), None)


def _ratio(
    name: str, goal: float, ours: Result | None, other: Result | None, against: str
) -> tuple[str, str, str, bool] | None:
    if ours is None or other is None:
        return None
    ratio = ours.rate / other.rate
    return (f"{name} vs {against}", f">= {goal}x", f"{ratio:.2f}x", ratio >= goal)


@dataclass
class Targets:
    one: dict[str, list[Result]] = field(default_factory=dict)
    zylo: dict[str, list[Result]] = field(default_factory=dict)
    floor: Result | None = None
    concurrent: dict[str, list[Result]] = field(default_factory=dict)
    blocked: dict[str, list[Result]] = field(default_factory=dict)
    accuracy: float | None = None
    memory: list[Usage] = field(default_factory=list)
    headers_us: float | None = None

    def speed(self) -> list[tuple[str, str, str, bool] | None]:
        """The hot-path targets (issue 14)."""
        one, zylo = self.one.get("redis", []), self.zylo.get("redis", [])
        conc = self.concurrent.get("redis", [])
        one_m, zylo_m = self.one.get("memory", []), self.zylo.get("memory", [])
        q_zylo = _get(zylo, "quota")
        rows = [
            _ratio("Redis sync, 1 limit", 0.9, _get(one, "quota"), self.floor, "the floor"),
            _ratio("Redis sync, 1 limit", 1.2, _get(one, "quota"), _fixed(one), "limits fixed"),
            _ratio("Redis sync, Zylo basic", 0.9, q_zylo, self.floor, "the floor"),
            _ratio("Redis sync, Zylo basic", 4, q_zylo, _fixed(zylo), "limits fixed"),
            _ratio(
                "Redis async 64 callers, Zylo basic", 3, _get(conc, "quota"), _fixed(conc), "limits"
            ),
            _ratio("Memory, Zylo basic", 2, _get(zylo_m, "quota"), _fixed(zylo_m), "limits fixed"),
            _ratio("Memory, 1 limit", 1, _get(one_m, "quota"), _fixed(one_m), "limits fixed"),
        ]
        if q_zylo is not None and q_zylo.command_us is not None:
            us = q_zylo.command_us  # commandstats, as the issue measures it
            what = f"{us:.1f} µs in commands ({q_zylo.server_us or 0:.1f} µs of process CPU)"
            rows.append(("Redis server time per Zylo basic decision", "<= 25 µs", what, us <= 25))
        if self.headers_us is not None:
            us = self.headers_us
            rows.append(("`Decision.headers()`, Zylo basic", "<= 3 µs", f"{us:.2f} µs", us <= 3))
        return rows

    def rows(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, goal, measured, passed or None when not run)."""
        out: list[tuple[str, str, str, bool | None]] = [r for r in self.speed() if r is not None]
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
