"""``quota simulate`` through the console script: the table agrees with an independent replay
through a limiter, memory and Redis agree, and the plot is a PNG that matplotlib drew and reads
back, the same bytes on a replay of the run."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FakeClock
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from PIL import Image

import quota
from quota.cli import main
from quota.cli.plot import PALETTE

SCRIPT = Path(sys.executable).with_name("quota")
RUN = ("--catalog", "zylo", "--plan", "basic", "--rate", "20/minute", "--duration", "1h",
       "--tokens", "500", "--seed", "1")  # fmt: skip


def quota_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [str(SCRIPT), "simulate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def replay(plan: str, per_minute: float, seconds: int, cost: dict[str, int], seed: int) -> Any:
    """The documented recipe, written out again: exponential gaps from random.Random(seed),
    rounded to the ms, each decided by a Limiter whose clock is set to the arrival."""
    clock = FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    start = clock.ms
    limiter = quota.Limiter("zylo", "memory://", clock=clock)
    who = quota.Principal(account="simulated", plan=plan, key="sk-simulated")
    rng = random.Random(seed)
    t = 0.0
    outcome: Counter[str] = Counter()
    admitted_by: Counter[str] = Counter()
    while True:
        t += rng.expovariate(per_minute / 60)
        if round(t * 1000) >= seconds * 1000:
            break
        clock.ms = start + round(t * 1000)
        d = limiter.acquire(who, cost)
        outcome["requests"] += 1
        if d.allowed:
            outcome["admitted"] += 1
            admitted_by.update(s.name for s in d.states)
        else:
            outcome["denied"] += 1
            outcome[f"denied:{d.denied_by}"] += 1
    return outcome, admitted_by


@pytest.fixture(scope="module")
def run_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    plot = tmp_path_factory.mktemp("sim") / "basic.png"
    proc = quota_cmd(*RUN, "--json", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    return json.loads(proc.stdout), plot


def test_the_table_agrees_with_a_replay(run_json: tuple[dict[str, Any], Path]) -> None:
    doc, _ = run_json
    outcome, admitted_by = replay("basic", 20, 3600, {"requests": 1, "tokens": 500}, 1)
    assert 1000 < doc["requests"] < 1400  # ~20/min over an hour
    assert (doc["requests"], doc["admitted"], doc["denied"]) == (
        outcome["requests"], outcome["admitted"], outcome["denied"]
    )  # fmt: skip
    limits = {s["name"]: s for s in doc["limits"]}
    assert set(limits) == {"rpm", "rpd", "tpd", "web_extract"}
    for name in ("rpm", "rpd", "tpd"):
        assert limits[name]["denied"] == outcome[f"denied:{name}"], name
        assert limits[name]["admitted"] == admitted_by[name], name
    # 200,000 tokens a day at 500 a request: exactly 400 admitted, then tpd denies the rest.
    assert doc["admitted"] == 400 and limits["tpd"]["remaining"] == 0
    assert limits["rpm"]["denied"] > 0 and limits["rpd"]["remaining"] == 7200 - 400
    assert limits["web_extract"]["admitted"] == 0  # no cost on its meter


def test_text_output_matches_json(run_json: tuple[dict[str, Any], Path]) -> None:
    doc, _ = run_json
    proc = quota_cmd(*RUN)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (
        f"{doc['requests']:,} requests, {doc['admitted']:,} admitted, {doc['denied']:,} denied"
        in out
    )
    for s in doc["limits"]:
        line = next(x for x in out.splitlines() if x.startswith(s["name"] + " "))
        cells = re.split(r"\s{2,}", line.strip())
        assert cells[4:7] == [f"{s['admitted']:,}", f"{s['denied']:,}", f"{s['over']:,}"], line


def test_the_plot_is_a_png_matplotlib_drew(
    run_json: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    _, path = run_json
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)  # decoded: height x width x RGBA, floats from 0 to 1
    assert pixels.shape == (420, 900, 4)
    for color in PALETTE[:3]:  # rpm, rpd and tpd were drawn in their colours
        distance = np.abs(pixels[..., :3] - np.array(to_rgb(color))).max(axis=-1)
        assert (distance < 1.5 / 255).any(), color
    with Image.open(path) as image:
        text = image.text  # the PNG's text chunks: the metadata quota wrote
    assert "rpm, rpd, tpd" in text["Description"] and text["Software"] == "quota simulate"
    again = tmp_path / "again.png"
    proc = quota_cmd(*RUN, "--plot", str(again))  # a replay of the run, with the text output
    assert proc.returncode == 0, proc.stderr
    assert f"plot: {again}" in proc.stdout
    assert again.read_bytes() == data  # the same run draws the same bytes


def test_plot_without_matplotlib_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    path = tmp_path / "p.png"
    assert main(["simulate", *RUN, "--plot", str(path)]) == 2
    err = capsys.readouterr().err
    assert "quota simulate --plot needs matplotlib: pip install 'quota[plot]'" in err
    assert not path.exists()


def test_redis_gives_the_same_run(run_json: tuple[dict[str, Any], Path], redis_port: int) -> None:
    doc, _ = run_json
    url = f"redis://127.0.0.1:{redis_port}/0?prefix=sim"
    proc = quota_cmd(*RUN, "--json", "--backend", url)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == doc
    again = quota_cmd(*RUN, "--json", "--backend", url)  # the run resets its account first
    assert json.loads(again.stdout) == doc


def test_progress_bar_and_other_plans(tmp_path: Path) -> None:
    proc = quota_cmd("--plan", "go", "--rate", "30/minute", "--duration", "2 hours",
                     "--cost", "google_search=1", "--progress", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    bars = proc.stderr.split()  # text mode reads the bar's carriage returns as newlines
    lines = [x for x in proc.stderr.splitlines() if x]
    assert len(lines) == 100 and all(x.startswith("simulate [") for x in lines)
    assert lines[-1].startswith("simulate [" + "#" * 30 + "] 100%") and bars[-1] == "requests"
    doc = json.loads(proc.stdout)
    search = next(s for s in doc["limits"] if s["name"] == "search")
    assert search["denied"] > 0 and doc["cost"] == {"requests": 1, "google_search": 1}
    denied = quota_cmd("--plan", "basic", "--model", "gpt-5.5", "--duration", "10m", "--json")
    other = json.loads(denied.stdout)
    assert other["admitted"] == 0 and other["denied_other"] == {"model": other["requests"]}


BAD_INPUT = [
    (("--plan", "gold"), "unknown plan 'gold'"),
    (("--plan", "basic", "--rate", "5/fortnight"), "--rate: bad rate '5/fortnight'"),
    (("--plan", "basic", "--duration", "soon"), "--duration: bad duration 'soon'"),
    (("--plan", "basic", "--cost", "wishes=1"), "unknown meter 'wishes'"),
    (("--plan", "basic", "--cost", "tokens"), "write it like credits=1500"),
    (("--plan", "basic", "--rate", "1000/second", "--duration", "30 days"), "at most"),
    (("--plan", "basic", "--plot", "/nonexistent/dir/p.png"), "--plot"),
]


def test_bad_input_exits_2() -> None:
    with ThreadPoolExecutor(4) as pool:  # one process each, run side by side
        procs = list(pool.map(lambda case: quota_cmd(*case[0]), BAD_INPUT))
    for (args, message), proc in zip(BAD_INPUT, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
