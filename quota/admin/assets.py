"""The dashboard's stylesheet and script, inlined into each page (no file to serve, no build).

The script refreshes the numbers the server already rendered: every ``REFRESH_MS`` (or every
``?refresh=N`` seconds of the page's address, 1 to 3600) it reads the page's admin API
address (``<body data-refresh>``, authorised by the page's cookie) and moves the gauges and
texts. Without JavaScript the page shows the numbers of its last load.
"""

from __future__ import annotations

REFRESH_MS = 5000

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:920px;padding:16px 24px;color:#1a202c;background:#f7fafc}
h1{font-size:24px;margin:8px 0}h2{font-size:18px;margin:22px 0 8px;color:#2d3748}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:4px 16px 12px;
margin-bottom:14px}
.muted{color:#718096}.debt{color:#c53030}a{color:#2b6cb0}
.limit{margin:10px 0}.limit .head{margin-bottom:3px}.nums{font-size:13px;color:#4a5568}
svg.gauge{display:block;width:100%;height:12px}
svg.chart{display:block;width:100%;height:auto}svg .axis{font-size:11px;fill:#718096}
figure{margin:8px 0 14px}figcaption{margin-bottom:4px}
.balance{font-size:17px;margin:6px 0}.balance .value{font-weight:600}
table{width:100%;border-collapse:collapse;background:#fff}
td,th{padding:6px 8px;border-bottom:1px solid #e2e8f0;text-align:left}
td.g{width:35%}td.detail{font-size:13px;color:#4a5568}
header{display:flex;justify-content:space-between;font-size:13px}
"""

SCRIPT = (
    """
(function () {
  "use strict";
  var body = document.body, url = body.dataset.refresh, view = body.dataset.view;
  function fmt(n) { return Number(n).toLocaleString("en-US"); }
  function money(meter, n) {
    if (meter !== "credits") { return fmt(n); }
    var s = (Math.abs(n) / 1e6).toLocaleString("en-US",
      {minimumFractionDigits: 2, maximumFractionDigits: 2});
    return (n < 0 ? "-$" : "$") + s;
  }
  function dur(s) {
    s = Math.round(s);
    if (s <= 0) { return "now"; }
    var units = [[86400, "d", 3600, "h"], [3600, "h", 60, "m"], [60, "m", 1, "s"]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i];
      if (s >= u[0]) {
        var rest = Math.floor((s % u[0]) / u[2]);
        return Math.floor(s / u[0]) + u[1] + (rest ? " " + rest + u[3] : "");
      }
    }
    return s + "s";
  }
  function colour(f) { return f >= 1 ? "#c53030" : f >= 0.75 ? "#c05621" : "#2f855a"; }
  function setGauge(svg, f) {
    var fill = svg && svg.querySelector(".fill");
    if (!fill) { return; }
    var w = Math.min(Math.max(f, 0), 1) * 100;
    fill.setAttribute("width", (w === 0 ? 0 : Math.max(w, 0.6)).toFixed(2));
    fill.setAttribute("fill", colour(f));
  }
  function text(el, sel, value) { var t = el.querySelector(sel); if (t) { t.textContent = value; } }
  function account(data) {
    data.limits.forEach(function (lim) {
      var el = document.querySelector('[data-limit="' + CSS.escape(lim.name) + '"]');
      if (!el) { return; }
      text(el, ".used", fmt(lim.used));
      text(el, ".cap", fmt(lim.limit));
      text(el, ".left", fmt(lim.remaining));
      text(el, ".resets", lim.resets_in_seconds <= 0 ? "now" : "in " + dur(lim.resets_in_seconds));
      setGauge(el.querySelector("svg.gauge"), lim.limit ? lim.used / lim.limit : 1);
    });
    Object.keys(data.balances).forEach(function (meter) {
      var el = document.querySelector('.balance[data-meter="' + CSS.escape(meter) + '"]');
      if (el) { text(el, ".value", money(meter, data.balances[meter])); }
    });
    var updated = document.getElementById("updated");
    if (updated) { updated.textContent = data.now; }
  }
  function index(data) {
    data.accounts.forEach(function (row) {
      var el = document.querySelector('tr[data-account="' + CSS.escape(row.account) + '"]');
      if (!el || row.error || row.limit === null) { return; }
      setGauge(el.querySelector("svg.gauge"), row.fraction_used);
      text(el, ".detail", row.limit + ": " + fmt(row.used) + " of " + fmt(row.max) +
        " (" + Math.round(row.fraction_used * 100) + "%)");
    });
  }
  function refresh() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) { (view === "account" ? account : index)(data); }
      })
      .catch(function () {});
  }
  var every = Number(new URLSearchParams(window.location.search).get("refresh"));
  every = every >= 1 && every <= 3600 ? every * 1000 : """
    + str(REFRESH_MS)
    + """;
  if (url && window.fetch) { setInterval(refresh, every); }
})();
"""
)
