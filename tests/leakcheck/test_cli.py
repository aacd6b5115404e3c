"""The command line: exit statuses, several endpoints, JSON and JUnit, and the console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ws_leakcheck import cli

ROOT = Path(__file__).resolve().parents[2]


def leakcheck(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ws_leakcheck", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_the_command_exits_1_on_a_leak_3_when_noisy_and_0_when_clean():
    leak = leakcheck("helpers.apps.leaks:app", "/ws/chat", "--clients", "2")
    noisy = leakcheck("helpers.apps.seed:app", "/ws/metrics", "--clients", "2")
    clean = leakcheck("helpers.apps.fixed:app", "/ws/chat", "--clients", "2", "--json")
    assert (leak.returncode, noisy.returncode, clean.returncode) == (1, 3, 0)
    assert leak.stdout.startswith("LEAK") and "leakcheck: leak (exit 1)" in leak.stderr
    assert json.loads(clean.stdout)["verdict"] == "clean"


def test_in_one_pipe_as_in_a_ci_log_the_verdict_line_comes_after_the_report():
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-m", "ws_leakcheck", "helpers.apps.fixed:app", "/ws/chat", "--clients",
                           "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, cwd=ROOT,
                          env=buffered)
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CLEAN") and lines[-1] == "leakcheck: clean (exit 0)", done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module:app", "/ws"], "Cannot import module 'no_such_module'"),
        (["no_such_module:app", "/ws"], "run from the folder your app imports from"),
        (["main.py:app", "/ws"], "name the module, not its file: main:app"),
        (["tests.support.zoo_broken.raises_on_import:app", "/ws"], "raised KeyError: 'LEAKCHECK_ZOO_DATABASE_URL'"),
        (["tests.support.zoo_broken.deep:app", "/ws"],
         ("raised KeyError: 'LEAKCHECK_ZOO_REDIS_URL' at tests/support/zoo_broken/settings.py:5 in <module> "
         "(REDIS_URL = os.environ[\"LEAKCHECK_ZOO_REDIS_URL\"])")),
        (["chat/main.py", "/ws"], "(for a file chat/main.py: chat.main:app)"),
        (["helpers.apps.seed:app", "/ws/metrics", "--junit", "/proc/no-such-folder/leak.xml"],
         "--junit '/proc/no-such-folder/leak.xml' cannot be written"),
        (["no_such_module:app", "/ws", "--junit", "/proc/no-such-folder/leak.xml"], "cannot be written"),
        (["helpers.apps.seed:nothing", "/ws"], "has no attribute 'nothing'"),
        (["helpers.apps.seed:app", "/nope"], "no WebSocket route at '/nope'"),
        (["helpers.apps.seed:app", "/health"], "'/health' is an HTTP route, not a WebSocket route"),
        (["helpers.apps.leaks:app", "/ws/room/{client_id}"], "is a route template"),
        (["tests.support.zoo_shapes:failing_app", "/ws"], "startup failed: RuntimeError: cannot reach redis"),
        (["helpers.apps.seed:app", "/ws/metrics", "--header", "nocolon"], "should look like 'Name: value'"),
        (["helpers.apps.seed:app", "/ws/metrics", "--python", "/no/such/python"], "is not an executable file"),
        (["helpers.apps.seed:app", "/ws/metrics", "--clients", "x"], "invalid int value"),
    ],
)
def test_usage_errors_exit_2_with_one_line_that_says_so(args, message):
    done = leakcheck(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("leakcheck: usage error:")


@pytest.mark.fast
def test_a_failure_of_the_checker_itself_exits_4_never_1(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in the checker")

    monkeypatch.setattr(cli, "run", broken)
    assert cli.main(["helpers.apps.seed:app", "/ws/metrics"]) == 4
    assert "the checker itself failed (not a verdict on your app): ZeroDivisionError" in capsys.readouterr().err


def test_several_endpoints_get_one_summary_line_each_then_the_evidence():
    # Two endpoints whose verdicts do not depend on timing (FastAPI's documented manager, /ws/room/1 of the
    # lessons, is noisy only when two clients' departures race: CLEAN or NOISY from run to run).
    done = leakcheck("tests.support.zoo:app", "/dict-registry", "/receive-no-try", "--clients", "2")
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert lines[0].startswith("LEAK     /dict-registry") and lines[1].startswith("NOISY    /receive-no-try")
    assert lines[2].startswith("overall: LEAK (2 checks")
    assert "pings every 0.5 s, 0.5 s to answer" in lines[3] and "uvicorn's own default is 20 s / 20 s" in lines[3]
    assert "hint: Unregister the client in `finally`" in done.stdout


def test_all_checks_every_websocket_route_without_path_parameters(tmp_path):
    junit = tmp_path / "leakcheck.xml"
    done = leakcheck("helpers.apps.fixed:app", "--all", "--clients", "2", "--ways", "fin", "--json",
                     "--junit", str(junit))
    report = json.loads(done.stdout)
    paths = [e["path"] for e in report["servers"]["uvicorn"]["endpoints"]]
    assert done.returncode == 0, done.stderr
    assert paths == ["/ws/prices", "/ws/heartbeat", "/ws/alerts", "/ws/chat", "/ws/stubborn"]
    xml = junit.read_text()
    assert f'tests="{len(paths)}" failures="0"' in xml and 'name="/ws/prices on uvicorn"' in xml


def test_all_says_which_routes_with_path_parameters_it_left_out():
    done = leakcheck("tests.support.zoo_shapes:app", "--all", "--clients", "1", "--ways", "fin", "--no-rounds",
                     "--json")
    report = json.loads(done.stdout)
    notes = [note for e in report["servers"]["uvicorn"]["endpoints"] for note in e.get("notes", [])]
    assert any("--all left out the routes with path parameters" in n and "/api/chat/{room}" in n for n in notes), notes


def test_the_junit_report_carries_the_evidence_of_a_failure(tmp_path):
    junit = tmp_path / "leakcheck.xml"
    leakcheck("helpers.apps.leaks:app", "/ws/prices", "--clients", "2", "--ways", "rst", "--junit", str(junit))
    xml = junit.read_text()
    assert 'failures="1"' in xml and "<failure message=\"leak: /ws/prices\">" in xml
    assert "2 of 2 handler coroutines never ended" in xml


def test_the_console_script_works_from_any_folder(tmp_path):
    script = shutil.which("ws-leakcheck", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("ws-leakcheck is installed with the lab (pip install -e .); this environment predates it")
    (tmp_path / "myproject.py").write_text((ROOT / "helpers" / "apps" / "seed.py").read_text())
    done = subprocess.run([script, "myproject:app", "/ws/metrics-fixed", "--clients", "2", "--ways", "fin"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)   # silent: a race on uvicorn
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CLEAN    /ws/metrics-fixed")


@pytest.mark.fast
def test_without_python_the_app_is_served_by_the_projects_venv(tmp_path, monkeypatch):
    from ws_leakcheck.interpreter import project_python

    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    python = tmp_path / ".venv" / "bin" / "python"
    python.symlink_to(sys.executable)
    assert project_python(None, tmp_path) == (str(python), "the project's .venv")
    assert project_python(str(tmp_path / ".venv"), tmp_path) == (str(python), "--python")
    assert project_python(None, tmp_path / "elsewhere") == (sys.executable, "the checker's own")


@pytest.mark.fast
def test_a_python_folder_that_is_no_venv_is_a_usage_error(tmp_path):
    from ws_leakcheck.errors import UsageError
    from ws_leakcheck.interpreter import project_python

    with pytest.raises(UsageError, match="folder without bin/python"):
        project_python(str(tmp_path))


def test_a_usage_error_with_json_prints_json_too():
    done = leakcheck("no_such_module:app", "/ws", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {"verdict": None, "error": "usage", "message": json.loads(done.stdout)["message"]}
    assert "Cannot import module 'no_such_module'" in json.loads(done.stdout)["message"]


def test_an_endpoint_whose_handlers_did_not_hold_the_shared_shutdown_says_so():
    done = leakcheck("helpers.apps.production:app", "/ws/prices", "/ws/prices-fixed", "--clients", "2", "--ways",
                     "fin", "--no-rounds")
    assert done.returncode == 1, done.stderr
    fixed = done.stdout[done.stdout.index("at /ws/prices-fixed on uvicorn: CLEAN"):]
    assert ("stop   the server's graceful shutdown was held by other endpoints' handlers (2 of /ws/prices), not "
            "this one's") in fixed
