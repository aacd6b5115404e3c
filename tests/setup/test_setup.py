"""``python3 -m helpers``: set-up failures say what to do in one sentence; ``clean`` removes what the lab made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MISSING = 'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'


def helpers_command(
    args: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "LAB_"))}
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=cwd, env={**clean_env, **env},
                          capture_output=True, text=True, timeout=timeout)


def without_module(tmp_path: Path, name: str) -> str:
    """A folder for PYTHONPATH that hides a standard module, as a Debian Python without python3-venv does."""
    stub = tmp_path / "stubs" / name
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(MISSING.format(name=name))
    return str(stub.parent)


@pytest.mark.parametrize("module", ["venv", "ensurepip"])
def test_a_python_without_venv_or_ensurepip_fails_in_one_sentence_naming_the_debian_package(tmp_path, module):
    done = helpers_command(["test"], {"PYTHONPATH": without_module(tmp_path, module),
                                      "LAB_VENV": str(tmp_path / "venv")})
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert f"(the {module} module is missing)" in line
    assert f"apt-get install python{sys.version_info.major}.{sys.version_info.minor}-venv" in line
    assert not (tmp_path / "venv").exists()


def test_an_unreachable_package_index_on_first_set_up_fails_in_one_sentence(tmp_path):
    # pip sees no configuration file (this machine's may add local wheel folders) and one index, out of reach
    env = {"LAB_VENV": str(tmp_path / "venv"), "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
    done = helpers_command(["test"], env)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("Installing the lab's pinned packages")
    (line,) = done.stderr.splitlines()
    assert line.startswith("lab set-up: Could not reach the package index (http://127.0.0.1:9/)")
    assert not (tmp_path / "venv" / ".lab-installed").exists()


def _clone_projects(folder: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    (folder / "ws-leakcheck").mkdir(parents=True)
    for name in ("pyproject.toml", "ws-leakcheck/pyproject.toml"):
        (folder / name).write_text(edit((ROOT / name).read_text()))
    return folder


def test_an_environment_installed_from_another_clone_is_installed_again(tmp_path):
    from helpers.__main__ import install_stamp

    other = _clone_projects(tmp_path / "other-clone")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".lab-installed").write_text(install_stamp(other))  # same pins, another clone's editable install
    env = {"LAB_VENV": str(venv), "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
    done = helpers_command(["test", "--version"], env)
    assert "Installing the lab's pinned packages" in done.stdout


def test_clean_removes_the_environment_and_the_cache_and_says_how_much_it_freed(tmp_path):
    clone = tmp_path / "clone"
    (clone / "helpers").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "timemachine.py", "errors.py"):  # clean's imports, all standard library
        shutil.copy(ROOT / "helpers" / name, clone / "helpers" / name)
    venv, cache = tmp_path / "venv", tmp_path / "xdg" / "ws-leak-lab"
    for folder, size in ((venv / "bin", 1_500_000), (cache / "stacks" / "abc", 2_500_000)):
        folder.mkdir(parents=True)
        (folder / "blob").write_bytes(b"x" * size)
    env = {"LAB_VENV": str(venv), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([sys.executable, "-S", "-m", "helpers", "clean"], cwd=clone, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PYTHON"))}, **env})
    assert done.returncode == 0, done.stderr
    assert f"removed {venv} (1.5 MB)" in done.stdout
    assert f"removed {cache / 'stacks'} (2.5 MB)" in done.stdout
    assert "freed 4.0 MB in all" in done.stdout
    assert not venv.exists() and not cache.exists()


@pytest.mark.fast
def test_the_cache_folder_follows_lab_cache_then_xdg_cache_home(monkeypatch, tmp_path):
    from helpers import timemachine

    monkeypatch.delenv("LAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert timemachine.cache_dir() == tmp_path / "xdg" / "ws-leak-lab"
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "mine"))
    assert timemachine.cache_dir() == tmp_path / "mine"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root gets --allow-root")
def test_lab_as_root_passes_allow_root_to_jupyterlab_and_says_so():
    done = helpers_command(["lab", "--version"], {}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # after a change to pyproject.toml, the install's line comes first
    assert lines[-2] == "Running as root (as in a container): passing --allow-root to JupyterLab."
    assert lines[-1][0].isdigit()  # JupyterLab's version: the extra argument reached it


def test_clean_removes_only_the_labs_own_folder_of_a_lab_cache_that_holds_other_things(tmp_path):
    clone = tmp_path / "clone"
    (clone / "helpers").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "timemachine.py", "errors.py"):
        shutil.copy(ROOT / "helpers" / name, clone / "helpers" / name)
    shared = tmp_path / "my-cache"
    (shared / "stacks" / "abc").mkdir(parents=True)
    (shared / "someone-elses").mkdir()
    env = {"LAB_VENV": str(tmp_path / "venv"), "LAB_CACHE": str(shared)}
    done = subprocess.run([sys.executable, "-S", "-m", "helpers", "clean"], cwd=clone, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "PYTHON"))}, **env})
    assert done.returncode == 0, done.stderr
    assert not (shared / "stacks").exists()
    assert (shared / "someone-elses").is_dir()


def test_a_sigterm_to_the_lab_command_reaches_jupyterlab_and_leaves_no_process_behind():
    import signal

    import psutil

    runner = ("import sys; from helpers.__main__ import _run_in_foreground; "
              "sys.exit(_run_in_foreground([sys.executable, '-c', 'import time; time.sleep(120)']))")
    parent = subprocess.Popen([sys.executable, "-c", runner], cwd=ROOT)
    try:
        assert wait_until(lambda: psutil.Process(parent.pid).children(), timeout=30) is not None
        child = psutil.Process(parent.pid).children()[0]
        parent.send_signal(signal.SIGTERM)   # as `timeout`, `docker stop` or systemd send it
        assert parent.wait(timeout=30) == 128 + signal.SIGTERM   # the child's status, as a shell reports it
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()


def test_an_install_says_what_it_is_doing_as_pip_goes(tmp_path, monkeypatch, capsys):
    import venv

    from helpers import __main__ as setup

    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    monkeypatch.setattr(setup, "VENV", tmp_path / "venv")
    setup._pip_install("six")
    assert capsys.readouterr().out.splitlines() == ["  installing 1 package ...", "  installed 1 package."]


@pytest.mark.fast
def test_fast_selects_the_fast_tier_in_one_process_and_passes_the_other_arguments_on():
    from helpers.__main__ import pytest_args

    assert pytest_args(["--fast"]) == ["-m", "fast", "-n", "0"]
    assert pytest_args(["-x", "--fast", "tests/leakcheck"]) == ["-m", "fast", "-n", "0", "-x", "tests/leakcheck"]
    assert pytest_args(["-x", "tests/leakcheck"]) == ["-x", "tests/leakcheck"]


@pytest.mark.parametrize(("flag", "expected"), [("-B", "[]"), ("", "['--no-compile']")])
def test_pip_compiles_at_install_only_where_python_writes_no_bytecode_itself(flag, expected):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, *filter(None, [flag]), "-c",
                           "from helpers.__main__ import NO_COMPILE; print(NO_COMPILE)"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == expected, done.stderr


@pytest.mark.fast
def test_a_change_to_the_test_tools_settings_does_not_reinstall_the_environment(tmp_path):
    from helpers.__main__ import install_stamp

    before = install_stamp(_clone_projects(tmp_path / "a"))
    (tmp_path / "a").rename(tmp_path / "b")
    after = install_stamp(_clone_projects(tmp_path / "a", lambda text: text.replace("--durations=12", "--durations=5")))
    assert "--durations=12" in (ROOT / "pyproject.toml").read_text()
    assert after == before


@pytest.mark.fast
def test_a_changed_pin_reinstalls_the_environment(tmp_path):
    from helpers.__main__ import install_stamp

    before = install_stamp(_clone_projects(tmp_path / "a"))
    (tmp_path / "a").rename(tmp_path / "b")
    after = install_stamp(_clone_projects(tmp_path / "a", lambda text: text.replace('"pytest==', '"pytest>=')))
    assert after != before
