"""CI is deterministic: under ``CI=true`` every hypothesis test runs the derandomised "ci"
profile (registered in tests/conftest.py), locally the default random exploration; and the
settings the test modules build inherit it (none sets ``derandomize`` itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CI_PROFILE, hypothesis_profile
from hypothesis import settings

HERE = Path(__file__).parent


def test_ci_true_selects_the_ci_profile() -> None:
    assert hypothesis_profile({"CI": "true"}) == CI_PROFILE
    for environ in ({}, {"CI": ""}, {"CI": "false"}):
        assert hypothesis_profile(environ) == "default"
    ci = settings.get_profile(CI_PROFILE)
    assert ci.derandomize and ci.database is None and ci.print_blob


def test_the_loaded_profile_follows_ci() -> None:
    """Run twice below, with and without ``CI=true``: the loaded profile and the settings a
    test module built at import (tests/test_fuzz.py's, tests/test_algorithms.py's) agree."""
    import test_algorithms
    import test_fuzz

    on_ci = os.environ.get("CI") == "true"
    assert settings.default.derandomize is on_ci
    tests = [test_fuzz.test_junk_in_a_limit_field_is_a_catalog_error_naming_it,
             test_algorithms.test_balance_admits_while_it_covers_the_cost]  # fmt: skip
    for test in tests:
        own = test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
        assert own.derandomize is on_ci
        assert (own.database is None) if on_ci else True


@pytest.mark.parametrize("ci", ["true", None])
def test_a_run_under_ci_is_derandomised(ci: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    test = f"{Path(__file__).name}::test_the_loaded_profile_follows_ci"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_test_that_turns_derandomize_off_is_refused_under_ci(tmp_path: Path) -> None:
    (tmp_path / "test_random.py").write_text(
        "from hypothesis import given, settings, strategies as st\n\n\n"
        "@settings(derandomize=False)\n@given(st.integers())\n"
        "def test_random(n: int) -> None:\n    pass\n"
    )
    env = os.environ | {"CI": "true", "PYTHONPATH": str(HERE)}
    proc = subprocess.run(  # tests/conftest.py loaded as a plugin, as it is for tests/
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "test_random.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "its @settings must not set derandomize" in proc.stderr
