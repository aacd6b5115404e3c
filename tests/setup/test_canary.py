"""The canary's verdicts, from a pytest report and from notebook runs; and, on request, one real run.

The real run installs the lab and the newest upstream releases into a fresh environment (two to three
minutes of downloads and installs before a single claim runs), so it is skipped unless LAB_CANARY=1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import canary
from helpers.canary import CHANGED, HOLDS, NOT_RUN, OTHER_VERSIONS, Result

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4" failures="1" errors="1" skipped="1">
  <testcase classname="tests.servers.test_server" name="test_a_real_client_round_trips_a_message" time="0.1"/>
  <testcase classname="tests.leakcheck.test_lesson_endpoints"
            name="test_the_checker_gives_the_right_verdict[seed-loop]" time="3.0">
    <failure message="AssertionError: verdict was 'leak', expected 'clean'&#10;assert 'leak' == 'clean'">trace</failure>
  </testcase>
  <testcase classname="tests.servers.test_server" name="test_stopping_cancels_handlers" time="0.0">
    <error message="failed on setup with &quot;ModuleNotFoundError: No module named 'granian'&quot;">trace</error>
  </testcase>
  <testcase classname="tests.servers.test_servers" name="test_daphne_cancels_after_its_timeout" time="0.0">
    <skipped type="pytest.skip" message="daphne is not installed">skip</skipped>
  </testcase>
</testsuite></testsuites>
"""


@pytest.mark.fast
def test_a_passing_test_still_holds_and_a_failing_one_changed_with_its_assertion_message():
    results = canary.results_from_junit(JUNIT)
    assert results[0] == Result("tests/servers/test_server.py::test_a_real_client_round_trips_a_message", HOLDS)
    assert results[1].status == CHANGED
    assert results[1].detail == "AssertionError: verdict was 'leak', expected 'clean'"


@pytest.mark.fast
def test_an_error_or_a_skip_could_not_run_and_says_why():
    results = canary.results_from_junit(JUNIT)
    assert [r.status for r in results[2:]] == [NOT_RUN, NOT_RUN]
    assert "No module named 'granian'" in results[2].detail
    assert results[3].detail == "skipped: daphne is not installed"


@pytest.mark.fast
def test_a_notebook_whose_assert_fails_changed_and_one_whose_kernel_died_could_not_run():
    assert canary.result_from_notebook("01_predict", {"status": "passed"}).status == HOLDS
    failed = canary.result_from_notebook("03_real_leaks", {"status": "failed", "message": "AssertionError: 3 alive"})
    assert (failed.status, failed.detail) == (CHANGED, "AssertionError: 3 alive")
    assert canary.result_from_notebook("06_at_scale",
                                       {"status": "error", "message": "DeadKernelError: x"}).status == NOT_RUN
    crashed = canary.result_from_notebook("07_browser", None, "Traceback ...\nImportError: no nbclient\n")
    assert (crashed.status, crashed.detail) == (NOT_RUN, "ImportError: no nbclient")


@pytest.mark.fast
def test_a_claim_that_fails_on_the_pins_too_could_not_run_rather_than_changed():
    newest = [Result("a", CHANGED, "assert 3 == 0"), Result("b", CHANGED, "assert 1 == 0"), Result("c", HOLDS)]
    on_pins = [Result("a", HOLDS), Result("b", CHANGED, "assert 2 == 0")]
    verdicts = canary.against_the_pins(newest, on_pins)
    assert verdicts[0] == Result("a", CHANGED, "assert 3 == 0")
    assert verdicts[1] == Result("b", NOT_RUN, "fails on the pinned versions too: assert 1 == 0")
    assert verdicts[2] == Result("c", HOLDS)


@pytest.mark.fast
def test_a_change_not_compared_with_the_pins_is_not_reported_as_a_change():
    verdict = canary.against_the_pins([Result("a", CHANGED, "assert 3 == 0")], [])
    assert verdict == [Result("a", NOT_RUN, "not run on the pinned versions to compare: assert 3 == 0")]


@pytest.mark.fast
@pytest.mark.parametrize(("statuses", "code"), [
    ([HOLDS, HOLDS], 0),
    ([HOLDS, CHANGED, NOT_RUN], 1),
    ([HOLDS, NOT_RUN], 2),
    ([], 2),
])
def test_the_exit_status_is_0_unchanged_1_changed_2_could_not_run(statuses, code):
    assert canary.exit_status([Result(f"claim {i}", s) for i, s in enumerate(statuses)]) == code


@pytest.mark.fast
def test_the_table_shows_the_versions_tested_against_the_pins_and_one_row_per_claim():
    text = canary.table(canary.results_from_junit(JUNIT), {"uvicorn": ("0.54.0", "0.55.1"), "granian": ("-", "2.8.9")})
    assert "| uvicorn | 0.54.0 | 0.55.1 |" in text and "| granian | - | 2.8.9 |" in text
    assert ("| tests/leakcheck/test_lesson_endpoints.py::test_the_checker_gives_the_right_verdict[seed-loop] "
            "| changed | AssertionError:" in text)
    assert text.endswith("1 still holds, 1 changed, 2 could not run")


@pytest.mark.fast
def test_outside_the_canary_a_lesson_on_other_versions_stops_and_names_each_package(monkeypatch):
    monkeypatch.delenv(canary.CANARY_VARIABLE, raising=False)
    with pytest.raises(AssertionError, match=r"uvicorn 0\.55\.0 \(measured with 0\.54\.0\); hypercorn missing"):
        canary.expect_versions({"uvicorn": "0.55.0", "starlette": "1.10.0"},
                               {"uvicorn": "0.54.0", "hypercorn": "0.18.0", "starlette": "1.10.0"})


@pytest.mark.fast
def test_under_the_canary_a_lesson_on_other_versions_says_so_on_a_line_the_canary_reads_and_runs_on(
        monkeypatch, capsys):
    monkeypatch.setenv(canary.CANARY_VARIABLE, "1")
    canary.expect_versions({"uvicorn": "0.55.0"}, {"uvicorn": "0.54.0"})
    printed = capsys.readouterr().out
    assert printed.startswith(canary.CANARY_LINE) and "(uvicorn 0.55.0 (measured with 0.54.0))" in printed


@pytest.mark.fast
def test_the_versions_a_lesson_was_measured_with_pass_silently(monkeypatch, capsys):
    monkeypatch.setenv(canary.CANARY_VARIABLE, "1")
    canary.expect_versions({"uvicorn": "0.54.0"}, {"uvicorn": "0.54.0"})
    assert capsys.readouterr().out == ""


@pytest.mark.fast
def test_the_canary_and_the_pin_check_name_the_same_variable_and_line():
    from helpers import versions

    assert canary.CANARY_VARIABLE == versions.CANARY
    assert canary._environment(canary.ROOT / "python")[canary.CANARY_VARIABLE] == "1"


@pytest.mark.fast
def test_the_canary_reads_back_the_pin_checks_report(monkeypatch, capsys):
    from helpers import versions

    monkeypatch.setenv(versions.CANARY, "1")
    monkeypatch.setattr(versions, "mismatches", lambda: ["uvicorn 0.55.0 (pinned 0.54.0)"])
    versions.check_pins()
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(canary.CANARY_LINE)
    assert canary.versions_differ("00_start_here", [line]).detail.startswith("versions differ from the pins (uvicorn")


@pytest.mark.fast
def test_a_notebook_on_other_versions_is_a_row_of_its_own_that_changes_no_verdict():
    row = canary.versions_differ("10_production_proxy_redis", ["Canary run: uvicorn 0.55.0 (measured with 0.54.0)"])
    assert row == Result("notebooks/10_production_proxy_redis.ipynb (the versions it was measured with)",
                         OTHER_VERSIONS, "uvicorn 0.55.0 (measured with 0.54.0)")
    results = [row, Result("notebooks/10_production_proxy_redis.ipynb (its asserts)", HOLDS)]
    assert canary.exit_status(results) == 0
    assert canary.table(results, {}).endswith(
        "1 still holds, 0 changed, 0 could not run; 1 notebook(s) ran on other versions than their text names")


@pytest.mark.fast
def test_the_pins_are_read_from_pyproject():
    pins = canary.pinned_versions()
    assert set(canary.UPSTREAM[:5]) <= set(pins)


@pytest.mark.fast
def test_the_test_selection_names_existing_test_files():
    assert ((canary.ROOT / "tests" / "servers" / "test_server.py").exists()
            and (canary.ROOT / "tests" / "leakcheck" / "test_lesson_endpoints.py").exists())


@pytest.mark.skipif(os.environ.get("LAB_CANARY") != "1",
                    reason="a real canary run downloads and installs for minutes: LAB_CANARY=1")
def test_a_real_canary_run_reports_the_versions_it_tested_and_a_verdict():
    run = subprocess.run([sys.executable, "-m", "helpers", "canary", "--tests-only"], capture_output=True, text=True,
                         cwd=canary.ROOT, timeout=1200)
    pinned_uvicorn = f"| uvicorn | {canary.pinned_versions()['uvicorn']} |"
    assert "| package | pinned | tested |" in run.stdout and pinned_uvicorn in run.stdout, run.stdout + run.stderr
    assert run.returncode in (0, 1), run.stdout[-2000:]


@pytest.mark.fast
def test_the_scheduled_workflow_runs_the_canary_and_fails_with_it():
    import yaml

    workflow = yaml.safe_load((canary.ROOT / ".github" / "workflows" / "canary.yml").read_text())
    assert workflow[True]["schedule"]  # YAML 1.1 reads the key `on` as True
    runs = [step.get("run", "") for step in workflow["jobs"]["canary"]["steps"]]
    assert any("set -o pipefail" in run and "python3 -m helpers canary" in run for run in runs)
