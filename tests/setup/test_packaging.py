import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def project_pins() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def environment_pins(path: Path) -> list[str]:
    return re.findall(r"^\s+- ([A-Za-z0-9_.\-]+==\S+)\s*$", path.read_text(), re.M)


@pytest.mark.fast
def test_every_dependency_is_pinned_to_an_exact_version():
    assert all("==" in pin for pin in project_pins())


@pytest.mark.fast
@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_and_binder_environments_carry_the_same_pins_as_pyproject(path):
    assert environment_pins(ROOT / path) == project_pins()


@pytest.mark.fast
@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_and_binder_name_the_python_version_ci_runs(path):
    major_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.search(rf"^\s+- python={re.escape(major_minor)}\s*$", (ROOT / path).read_text(), re.M)


@pytest.mark.fast
def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m helpers test" in readme and "python3 -m helpers lab" in readme
    assert "\npython3 -m helpers test\n" in ci


def test_the_binder_build_installs_the_environment_the_helpers_and_the_proxy():
    repo2docker = shutil.which("jupyter-repo2docker", path=str(Path(sys.executable).parent))
    assert repo2docker, "jupyter-repo2docker is part of the test extra"
    rendered = subprocess.run(
        [repo2docker, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    dockerfile = rendered.stdout + rendered.stderr
    assert '--file "binder/environment.yml"' in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    assert "jupyter-server-proxy==" in (ROOT / "binder" / "environment.yml").read_text()
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "set -e" in post_build and "pip install --no-deps -e ." in post_build


@pytest.mark.fast
def test_the_helpers_never_bind_anything_but_loopback():
    sources = "\n".join(p.read_text() for p in (ROOT / "helpers").rglob("*.py"))
    notebooks = "\n".join(p.read_text() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert "0.0.0.0" not in sources + notebooks
