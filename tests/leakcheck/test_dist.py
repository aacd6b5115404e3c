"""ws-leakcheck as a distribution of its own: it builds, passes twine's checks, needs only what it runs on, and
imports nothing from the lab."""

import ast
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support import zoo_envs

ROOT = Path(__file__).resolve().parents[2]
SOURCES = zoo_envs.TOOL / "src" / "ws_leakcheck"

pytestmark = pytest.mark.xdist_group("leakcheck-dist")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    return zoo_envs.build_distributions(tmp_path_factory.mktemp("dist"))


def test_the_wheel_and_the_sdist_pass_twines_checks(built):
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_the_wheel_requires_only_websockets_and_psutil_and_pins_neither(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("ws_leakcheck-0.1.0.dist-info/METADATA").decode()
    required = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    always = [r for r in required if "extra ==" not in r]
    assert always == ["websockets>=13.0", "psutil>=5.9"]
    assert not any("==" in r.split(";")[0] or "<" in r.split(";")[0] for r in required)


def test_the_wheel_registers_the_command_and_the_pytest_plugin(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("ws_leakcheck-0.1.0.dist-info/entry_points.txt").decode()
    assert "[console_scripts]\nws-leakcheck = ws_leakcheck.cli:entry_point" in entry_points
    assert "[pytest11]\nws_leakcheck = ws_leakcheck.pytest_plugin" in entry_points


def test_the_sdist_holds_the_sources_the_license_and_the_changelog(built):
    _, sdist = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "src/ws_leakcheck/agent.py"} <= names


@pytest.mark.fast
def test_the_version_is_the_same_in_the_package_and_its_project_file():
    import ws_leakcheck

    project = tomllib.loads((zoo_envs.TOOL / "pyproject.toml").read_text())["project"]
    assert ws_leakcheck.__version__ == project["version"]
    assert f"## {project['version']}" in (zoo_envs.TOOL / "CHANGELOG.md").read_text()


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


@pytest.mark.fast
@pytest.mark.parametrize("path", sorted(SOURCES.glob("*.py")), ids=lambda p: p.name)
def test_the_tool_imports_nothing_from_the_lab(path):
    lab = {name for name in _imported_modules(path) if name.split(".")[0] in ("helpers", "tests")}
    assert not lab


AGENT_SIDE = ("agent.py", "awaitchain.py", "connections.py", "errors.py", "importer.py", "owner_only.py", "servers.py",
              "wire.py")
"""The modules the agent runs (by path in the project's interpreter, for --python), and the lab's servers use."""


@pytest.mark.fast
@pytest.mark.parametrize("name", AGENT_SIDE)
def test_the_agent_imports_only_the_standard_library(name):
    """It runs by path in the project's interpreter (--python), where only the server is sure to be installed."""
    imported = {module.split(".")[0] for module in _imported_modules(SOURCES / name)}
    outside = imported - set(sys.stdlib_module_names) - {"__future__", "ws_leakcheck"}
    servers = {"uvicorn", "hypercorn", "granian", "daphne", "twisted"}  # imported for the server asked for only
    assert outside <= servers
    own = {module for module in _imported_modules(SOURCES / name) if module.startswith("ws_leakcheck.")}
    assert {module.removeprefix("ws_leakcheck.") + ".py" for module in own} <= set(AGENT_SIDE)


def test_importing_the_lab_servers_loads_neither_the_command_line_nor_the_clients():
    """A fresh interpreter: the lessons' servers load the agent's standard-library modules, and no argparse."""
    code = ("import sys, helpers.servers; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('ws_leakcheck') or m == 'argparse')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "argparse" not in loaded
    assert "ws_leakcheck.cli" not in loaded
    agent_side = {"ws_leakcheck." + name.removesuffix(".py") for name in AGENT_SIDE}
    assert loaded - {"ws_leakcheck"} <= agent_side


@pytest.mark.fast
def test_the_tools_page_is_part_of_the_website(tmp_path):
    from helpers import book

    staged = book.stage(tmp_path / "site-src")
    assert (staged / "docs" / "ws-leakcheck.md").read_text() == (ROOT / "docs" / "ws-leakcheck.md").read_text()
    conf = (ROOT / "docs" / "site" / "conf.py").read_text()
    assert '"docs/ws-leakcheck.md"' in conf and '"docs/ws-leakcheck"' in conf
    page = (ROOT / "docs" / "ws-leakcheck.md").read_text()
    for section in ("## Install", "## Use", "## Exit statuses", "## Glossary of the evidence", "## In CI"):
        assert section in page


@pytest.mark.fast
def test_the_pages_exit_table_is_the_one_the_tool_uses():
    from ws_leakcheck import verdict

    page = (ROOT / "docs" / "ws-leakcheck.md").read_text()
    for name, code in verdict.EXIT_CODES.items():
        assert f"| {code} | {name} |" in page
    assert "**leak, then untested, then noisy, then\nclean**" in page
