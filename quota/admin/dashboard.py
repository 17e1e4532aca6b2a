"""The dashboard's two pages, rendered on the server from the admin API's own answers: the
accounts nearest their caps, and one page per account (a gauge per limit, the credit balance,
the daily history as charts). Every number is in the HTML; a small script only refreshes them
from the admin API every few seconds (with the page's cookie), so the page reads the same
without JavaScript. No build step, no library, no request to another site.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from .assets import SCRIPT, STYLE
from .svg import bar_chart, gauge

JSON = dict[str, Any]


def page(title: str, body: str, nonce: str, data: JSON) -> bytes:
    """A whole HTML document; ``data`` tells the script what to refresh, and from where."""
    attrs = " ".join(f'data-{k}="{escape(str(v))}"' for k, v in data.items())
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<style nonce="{nonce}">{STYLE}</style></head>'
        f"<body {attrs}>{body}"
        f'<script nonce="{nonce}">{SCRIPT}</script></body></html>\n'
    ).encode()


def amount(meter: str, n: int) -> str:
    """Credits are micro-dollars: show dollars beside the raw amount."""
    if meter == "credits":
        sign = "-" if n < 0 else ""
        return f"{sign}${abs(n) / 1_000_000:,.2f}"
    return f"{n:,}"


def duration(seconds: float) -> str:
    """41 -> "41s", 3725 -> "1h 2m", 90000 -> "1d 1h"."""
    s = round(seconds)
    if s <= 0:
        return "now"
    for size, unit, sub, subunit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if s >= size:
            rest = (s % size) // sub
            return f"{s // size}{unit}" + (f" {rest}{subunit}" if rest else "")
    return f"{s}s"


def limit_row(lim: JSON) -> str:
    used, cap, left = lim["used"], lim["limit"], lim["remaining"]
    fraction = used / cap if cap else 1.0
    resets = "now" if lim["resets_in_seconds"] <= 0 else f"in {duration(lim['resets_in_seconds'])}"
    name = escape(lim["name"])
    return (
        f'<div class="limit" data-limit="{name}">'
        f'<div class="head"><b>{name}</b> <span class="muted">{escape(lim["meter"])} ·'
        f" {escape(lim['algorithm'])} · per {escape(lim['scope'])}</span></div>"
        f"{gauge(fraction, f'{name}: {used} of {cap} used')}"
        f'<div class="nums"><span class="used">{used:,}</span> of'
        f' <span class="cap">{cap:,}</span> used · <span class="left">{left:,}</span> left ·'
        f' resets <span class="resets" title="{escape(lim["resets_at"])}">{resets}</span>'
        f' <span class="muted">({escape(lim["resets_at"])})</span></div></div>'
    )


def balances(body: JSON) -> str:
    if not body["balances"]:
        return '<p class="muted">This plan has no prepaid balance.</p>'
    rows = "".join(
        f'<div class="balance" data-meter="{escape(m)}"><b>{escape(m)}</b>'
        f' <span class="value{" debt" if n < 0 else ""}">{amount(m, n)}</span>'
        f' <span class="muted">({n:,})</span></div>'
        for m, n in body["balances"].items()
    )
    return rows


def history(body: JSON) -> str:
    usage = body.get("usage")
    if not usage:
        return '<p class="muted">This catalog keeps no usage history.</p>'
    daily: dict[str, dict[str, int]] = usage["daily"]
    meters = list(next(iter(daily.values()), {}))
    used = [m for m in meters if any(day.get(m) for day in daily.values())]
    charts = []
    for meter in used or meters[:1]:
        series = {day: totals.get(meter, 0) for day, totals in daily.items()}
        total = sum(series.values())
        charts.append(
            f"<figure><figcaption><b>{escape(meter)}</b> per day"
            f' <span class="muted">({total:,} in {len(series)} days,'
            f" {escape(usage['timezone'])})</span></figcaption>"
            f"{bar_chart(meter, series)}</figure>"
        )
    idle = [m for m in meters if m not in used]
    if used and idle:
        charts.append(f'<p class="muted">No usage of {escape(", ".join(idle))}.</p>')
    return "".join(charts)


def account_page(body: JSON, root: str, query: str, nonce: str) -> bytes:
    """One account: its limits as gauges, its balances, its daily history as charts."""
    account = body["account"]
    plan = body["plan"]["name"]
    groups = ", ".join(f"{k} {v}" for k, v in body["groups"].items()) or "none"
    overrides = ", ".join(f"{k}: {v}" for k, v in body["overrides"].items()) or "none"
    limits = "".join(limit_row(lim) for lim in body["limits"]) or "<p>No limits.</p>"
    html = (
        f'<header><a href="{escape(root)}/">← accounts</a>'
        f' <span class="muted">updated <span id="updated">{escape(body["now"])}</span></span>'
        f"</header><h1>{escape(account)}</h1>"
        f"<p>plan <b>{escape(plan)}</b> · groups {escape(groups)} · overrides"
        f" {escape(overrides)}</p>"
        f"<section><h2>Limits</h2>{limits}</section>"
        f"<section><h2>Balance</h2>{balances(body)}</section>"
        f"<section><h2>Daily usage</h2>{history(body)}</section>"
    )
    api = f"{root}/api/accounts/{quote(account, safe='')}" + (f"?{query}" if query else "")
    return page(f"{account} · quota", html, nonce, {"refresh": api, "view": "account"})


def index_page(rows: list[JSON], root: str, nonce: str) -> bytes:
    """The known accounts, the nearest to a cap first."""
    items = []
    for r in rows:
        link = f"{root}/accounts/{quote(r['account'], safe='')}"
        if "error" in r:
            detail = f'<span class="muted">{escape(r["error"])}</span>'
            fraction = 0.0
        elif r["limit"] is None:
            detail, fraction = '<span class="muted">no windowed limit</span>', 0.0
        else:
            fraction = r["fraction_used"]
            detail = f"{escape(r['limit'])}: {r['used']:,} of {r['max']:,} ({fraction * 100:.0f}%)"
        items.append(
            f'<tr data-account="{escape(r["account"])}"><td><a href="{escape(link)}">'
            f"{escape(r['account'])}</a></td><td>{escape(r['plan'])}</td>"
            f'<td class="g">{gauge(fraction, detail)}</td><td class="detail">{detail}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>account</th><th>plan</th><th>fullest limit</th><th></th></tr>"
        f"</thead><tbody>{''.join(items)}</tbody></table>"
        if items
        else '<p class="muted">The resolver lists no accounts. Open one at'
        f" {escape(root)}/accounts/ACCOUNT?plan=PLAN.</p>"
    )
    html = f"<h1>Accounts nearest their caps</h1>{table}"
    return page(
        "accounts · quota", html, nonce, {"refresh": f"{root}/api/accounts", "view": "index"}
    )


def login_page(root: str) -> bytes:
    """What a browser without the admin cookie sees (with a 401)."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>quota admin</title>"
        "</head><body><h1>quota admin</h1><p>This page needs the admin token: open"
        f" <code>{escape(root)}/?token=&lt;admin token&gt;</code> once (it sets a cookie), or"
        " send <code>Authorization: Bearer &lt;admin token&gt;</code>.</p></body></html>\n"
    ).encode()
