"""The admin dashboard in a real headless Chromium (Debian's ``chromium``, driven by
playwright): ``quota serve --admin-token`` on a free port, real traffic first, then the pages
as an operator sees them, with and without JavaScript. A screenshot is saved (the test's tmp
dir, and /tmp/dashboard.png for a person to look at).

Nothing here is skipped: CI installs chromium (.ci/run), and without it the test fails
saying how to install it. playwright's own browser downloads are never used.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_servers import ServeProcess, quota_serve
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-token-0123456789"
CHAT = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium);"
            " .ci/run does so on CI"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[ServeProcess]:
    """``quota serve`` with the admin app, after real traffic: basic near its minute cap,
    go with a few token-heavy calls."""
    with quota_serve("--admin-token", TOKEN) as served:
        with httpx.Client(base_url=served.url, timeout=10) as c:
            for _ in range(8):
                r = c.post(
                    "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-basic"}
                )
                assert r.status_code == 200, r.text
            for _ in range(3):
                r = c.post(
                    "/v1/chat/completions",
                    json={**CHAT, "max_tokens": 300},
                    headers={"Authorization": "Bearer sk-go"},
                )
                assert r.status_code == 200, r.text
        yield served


def _login(page: Page, gateway: ServeProcess) -> None:
    page.goto(f"{gateway.url}/admin/?token={TOKEN}")
    assert page.url == f"{gateway.url}/admin/"  # the token left the address bar


def test_the_index_lists_the_accounts_nearest_their_caps(
    browser: Browser, gateway: ServeProcess
) -> None:
    page = browser.new_page()
    _login(page, gateway)
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("demo-basic")
    expect(rows.first).to_contain_text("rpm: 8 of 10 (80%)")
    assert rows.count() >= 5  # one account per demo plan
    page.screenshot(path="/tmp/dashboard_index.png", full_page=True)
    page.close()


def test_an_account_page_shows_limits_balance_and_history(
    browser: Browser, gateway: ServeProcess, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    _login(page, gateway)
    page.click("text=demo-go")
    expect(page.locator("h1")).to_have_text("demo-go")
    rpd = page.locator('[data-limit="rpd"]')
    expect(rpd.locator(".used")).to_have_text("3")
    expect(rpd.locator(".cap")).to_have_text("28,800")
    expect(rpd).to_contain_text("resets in")
    assert page.locator("svg.gauge").count() == page.locator(".limit").count() > 0
    expect(page.locator('.balance[data-meter="credits"] .value')).to_contain_text("$")
    chart = page.locator('svg.chart[data-meter="requests"]')
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() >= 30  # a bar per day
    expect(chart.locator("rect").last.locator("title")).to_contain_text(": 3 requests")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, "/tmp/dashboard.png")
    page.close()


def test_the_script_refreshes_the_numbers(browser: Browser, gateway: ServeProcess) -> None:
    page = browser.new_page()
    _login(page, gateway)
    page.goto(f"{gateway.url}/admin/accounts/demo-pro?refresh=1")  # every second
    used = page.locator('[data-limit="rpd"] .used')
    expect(used).to_have_text("0")
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-pro"}
    )
    assert r.status_code == 200
    expect(used).to_have_text("1", timeout=10_000)  # the next refresh
    page.close()


def test_the_numbers_read_without_javascript(browser: Browser, gateway: ServeProcess) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{gateway.url}/admin/?token={TOKEN}")
    page.goto(f"{gateway.url}/admin/accounts/demo-basic")
    expect(page.locator('[data-limit="rpm"] .used')).to_have_text("8")
    expect(page.locator('[data-limit="rpm"] .left')).to_have_text("2")
    context.close()


def test_without_the_token_the_page_says_how_to_log_in(
    browser: Browser, gateway: ServeProcess
) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{gateway.url}/admin/accounts/demo-basic")
    assert response is not None and response.status == 401
    expect(page.locator("body")).to_contain_text("?token=")
    assert "demo-basic" not in page.content()
    context.close()
