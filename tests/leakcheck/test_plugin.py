"""ws-leakcheck installed into a project's own environment, as a team installs it: the wheel, in a fresh venv
that has FastAPI, uvicorn and pytest but not the lab, run from the project's folder (tests/support/zoo_project: an app
that imports the project's own `helpers` package, and a [tool.ws-leakcheck] table with a route's script)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import zoo_envs

PROJECT = Path(__file__).resolve().parents[1] / "support" / "zoo_project"

pytestmark = pytest.mark.xdist_group("leakcheck-dist")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(the project's folder, its Python with the tool installed)."""
    wheel, _ = zoo_envs.build_distributions(tmp_path_factory.mktemp("dist"))
    python = zoo_envs.user_project_with(wheel, tmp_path_factory.mktemp("venv") / ".venv")
    folder = tmp_path_factory.mktemp("project") / "chat-project"
    shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder, python


def _run(project, *args, token="secret-token"):
    folder, python = project
    env = {"PATH": str(python.parent) + ":/usr/bin:/bin", "HOME": str(folder), "CHAT_TEST_TOKEN": token}
    return subprocess.run([str(a) for a in args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def _plain_pytest(project, *args):
    """The ``pytest`` command, which (unlike ``python -m pytest``) does not put the project's folder on sys.path."""
    return _run(project, "pytest", "-p", "no:cacheprovider", *args)


def test_a_plain_pytest_fails_the_leak_with_its_evidence_and_passes_its_fixed_twin(project):
    done = _plain_pytest(project, "-q", "-rfEp", "check_leaks.py", "-k", "not wrong_first_message")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed, 1 deselected" in done.stdout, done.stdout
    assert "PASSED check_leaks.py::test_its_fixed_twin_passes" in done.stdout
    assert "FAILED check_leaks.py::test_the_feed_waiter_is_caught" in done.stdout
    assert "check_leaks.py:6: LeakFound" in done.stdout
    assert "FAILED check_leaks.py::test_the_secure_feed_leaks_with_the_script_of_its_route" in done.stdout
    assert "E       ws_leakcheck.testing.LeakFound: leak: /ws/notifications" in done.stdout
    assert "2 of 2 handler coroutines never ended" in done.stdout and "hint: " in done.stdout


def test_the_command_checks_the_app_of_the_table_with_each_routes_script(project):
    done = _run(project, "ws-leakcheck", "--all", "--json")
    assert done.returncode == 1, done.stderr
    endpoints = {e["path"]: e for e in json.loads(done.stdout)["servers"]["uvicorn"]["endpoints"]}
    assert {path: endpoints[path]["verdict"] for path in ("/ws/notifications", "/ws/notifications-fixed",
                                                          "/ws/secure-feed")} == {
        "/ws/notifications": "leak", "/ws/notifications-fixed": "clean", "/ws/secure-feed": "leak"}
    assert "secret-token" not in done.stdout  # the token reaches the app, not the report


def test_a_token_the_table_reads_from_an_unset_variable_is_a_usage_error(project):
    folder, python = project
    env = {"PATH": str(python.parent) + ":/usr/bin:/bin", "HOME": str(folder)}
    done = subprocess.run(["ws-leakcheck", "/ws/secure-feed"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "uses ${CHAT_TEST_TOKEN}, which is not set in the environment" in done.stderr


def test_a_wrong_first_message_fails_the_test_as_untested_and_exits_5_on_the_command_line(project):
    done = _plain_pytest(project, "-q", "check_leaks.py", "-k", "wrong_first_message")
    command = _run(project, "ws-leakcheck", "/ws/secure-feed", "--send", '{"typ": "hello"}')
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
    assert "LeakFound: untested: /ws/secure-feed" in done.stdout
    assert "every session ended before its client left (close code 1008)" in done.stdout
    assert command.returncode == 5, command.stdout + command.stderr
    assert command.stdout.startswith("UNTESTED /ws/secure-feed")
    assert "leakcheck: untested (exit 5)" in command.stderr
