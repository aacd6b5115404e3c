"""The one-host hub recipe, run for real with two Unix users (benchmarks/hub_run.py): opt-in, about 6 minutes.

    LAB_HUB_VENV=/srv/lab/venv LAB_HUB_CHP=/srv/lab/chp/node_modules/.bin/configurable-http-proxy \\
        .venv/bin/python -m pytest -n 0 tests/classroom/test_hub_run.py

It needs root (it creates and removes the users hublearner1 and hublearner2) and a venv of Debian's
/usr/bin/python3 with jupyterhub, jupyterhub-idle-culler and this lab installed (docs/classroom_hub.md has the
commands): without them every test is skipped, with the reason. One hub run serves every test of this file.
"""

import json
import os
import shutil

import pytest

from benchmarks import hub_run

VENV = os.environ.get("LAB_HUB_VENV", "")
CHP = os.environ.get("LAB_HUB_CHP", "")
USERS = ("hublearner1", "hublearner2")

pytestmark = [
    pytest.mark.xdist_group("hub_run"),  # one worker, one hub run: the users' names are fixed
    pytest.mark.timeout(1200),  # the first test waits for the whole run (cullers included)
    pytest.mark.skipif(not (VENV and CHP), reason="opt-in: set LAB_HUB_VENV and LAB_HUB_CHP to run the hub"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub run creates Unix users: it needs root"),
    pytest.mark.skipif(bool(CHP) and shutil.which(CHP) is None, reason=f"no configurable-http-proxy at {CHP!r}"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    summary = tmp_path_factory.mktemp("hub_run") / "summary.json"
    code = hub_run.main(["--venv", VENV, "--chp", CHP, "--users", *USERS, "--notebooks", "10",
                         "--json", str(summary)])
    assert code == 0, "benchmarks/hub_run.py could not run (its message is above)"
    return json.loads(summary.read_text())


@pytest.fixture(params=USERS)
def learner(request, run):
    return run["learners"][request.param]


def test_each_learner_logs_in_through_pam_and_their_kernel_runs_as_them(run, learner):
    assert learner["login"].startswith("302")
    assert learner["probe"]["user"] in USERS


def test_kernels_import_helpers_from_the_learners_own_clone_and_an_edit_takes_effect(learner):
    home = f"/home/{learner['probe']['user']}/ws-leak-lab/helpers/"
    assert learner["probe"]["helpers"] == home + "__init__.py"
    assert learner["edit_seen"]["file"] == home + "hub_run_edit.py"


def test_the_clone_shares_no_inode_with_the_repository_it_came_from(learner):
    assert learner["shared_inodes_in_clone"] == 0


def test_kernel_messages_are_encrypted(run, learner):
    assert learner["probe"]["curve_key_in_connection_file"]
    assert run["hub_log"]["kernels_without_encryption"] == 0


def test_another_learner_subscribed_to_a_kernels_iopub_reads_nothing_though_plain_zmq_would_leak(run):
    assert run["isolation"]["iopub_of_other_kernel"] == {"frames": 0, "secret_seen": False}
    assert run["isolation"]["plain_zmq_control"]["secret_seen"]


def test_servers_and_kernels_run_with_umask_077_and_what_they_create_is_private(learner):
    probe = learner["probe"]
    assert (learner["server_umask"], probe["kernel_umask"]) == ("0077", "0077")
    assert (probe["file_mode"], probe["folder_mode"], probe["connection_file_mode"]) == ("0o600", "0o700", "0o600")
    assert (probe["history_mode"], probe["ipython_dir_mode"], probe["home_mode"]) == ("0o600", "0o700", "0o700")


def test_another_learners_kernel_is_refused_by_the_dashboard(run):
    other = [row for row in run["isolation"]["dashboard"] if row["through"].startswith(f"{USERS[1]}'s kernel")]
    assert [row["page"] for row in other] == [403]


def test_the_owner_reaches_their_dashboard_through_their_own_proxy(run):
    own = next(row for row in run["isolation"]["dashboard"] if row["through"].startswith(f"/user/{USERS[0]}/"))
    assert own["page"] == 200


def test_both_learners_run_notebook_10_at_the_same_time_without_a_failure(run):
    runs = [r for r in run["notebooks"] if r["notebook"].startswith("10_")]
    assert [(r["user"], r["failure"]) for r in runs] == [(user, None) for user in USERS]


def test_the_kernel_culler_ends_an_idle_kernel_with_its_websocket_connected(run, learner):
    assert learner["kernel_culled_after_s"] is not None
    assert any("with 1 connections" in line for line in run["hub_log"]["culled_kernels"])


def test_the_idle_culler_service_stops_an_idle_server(run, learner):
    assert run["idle_culler_pids"]
    assert learner["server_culled_after_s"] is not None


def test_nothing_of_the_learners_is_left_and_the_users_are_removed(run):
    assert run["processes_left_after_hub_stop"] == {user: [] for user in USERS}
    assert run["users_removed"] == list(USERS)
