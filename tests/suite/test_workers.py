"""The suite's test workers (pytest-xdist): the tests of one ``xdist_group`` share a worker, and with it what that
worker starts once (a JupyterLab and its Chromium, the website's build)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("suite-check")
def test_a_grouped_test_carries_its_group_to_the_scheduler(request: pytest.FixtureRequest):
    if os.environ.get("PYTEST_XDIST_WORKER") is None or not request.config.getvalue("loadgroup"):
        pytest.skip("the suite runs in one process here: there are no groups to keep")
    assert request.node.nodeid.endswith("@suite-check"), (
        "pytest-xdist's --dist loadgroup no longer reaches its scheduler (pytest-dev/pytest-xdist#1386, with pytest "
        "9.2): the tests of one group run in several workers, each starting its own JupyterLab and website build")


@pytest.mark.fast
def test_the_tests_that_wait_for_the_other_pythons_are_collected_last(request: pytest.FixtureRequest):
    names = [item.nodeid for item in request.session.items]
    waiting = [n for n, name in enumerate(names) if "test_the_notebook_runs_top_to_bottom_on_another_python" in name]
    if not waiting:
        pytest.skip("this run did not collect the other Pythons' tests")
    assert waiting == list(range(len(names) - len(waiting), len(names)))
