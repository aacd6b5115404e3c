"""The one-host hub recipe (docs/jupyterhub_config_one_host.py) sets what docs/classroom_hub.md says it sets.

The file is loaded as JupyterHub loads it, with ``get_config()`` giving a traitlets Config; JupyterHub itself is
not installed in the lab's environment, so the hub's own traits are checked by name, and the single-user server's
arguments are parsed by traitlets and checked against jupyter_server's and jupyter_client's classes.
benchmarks/hub_run.py runs the recipe for real (tests/classroom/test_hub_run.py, opt-in).
"""

import getpass
import os
import pwd
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client.manager import KernelManager
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from traitlets import HasTraits
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader

pytestmark = pytest.mark.fast  # every test here is pure: no process, no server

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "jupyterhub_config_one_host.py"
GUIDE = ROOT / "docs" / "classroom_hub.md"


def load_recipe(**environment: str) -> Config:
    config = Config()
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        exec(compile(RECIPE.read_text(), str(RECIPE), "exec"), {"get_config": lambda: config})
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return config


def server_arguments(config: Config) -> Config:
    """The single-user server's command-line arguments, parsed by traitlets with the classes they configure (so
    each value has its trait's type)."""
    loader = KVArgParseConfigLoader(list(config.Spawner.args), classes=[MappingKernelManager, KernelManager])
    return loader.load_config()


def test_every_address_of_the_hub_and_the_servers_is_loopback():
    c = load_recipe()
    assert c.JupyterHub.ip == c.JupyterHub.hub_ip == c.Spawner.ip == "127.0.0.1"
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")


def test_every_argument_of_the_single_user_server_names_a_trait_of_the_class_it_configures():
    classes: dict[str, type[HasTraits]] = {"MappingKernelManager": MappingKernelManager, "KernelManager": KernelManager}
    parsed = server_arguments(load_recipe())
    assert set(parsed) <= set(classes)
    assert all(set(parsed[name]) <= set(classes[name].class_trait_names()) for name in parsed)


def test_kernel_transport_encryption_is_required_and_the_installed_jupyter_client_accepts_it():
    parsed = server_arguments(load_recipe())
    assert parsed.KernelManager.transport_encryption == "required"
    assert KernelManager(transport_encryption="required").transport_encryption == "required"


def test_kernels_idle_for_30_minutes_are_culled_even_with_their_notebook_open():
    parsed = server_arguments(load_recipe()).MappingKernelManager
    assert (parsed.cull_idle_timeout, parsed.cull_interval, parsed.cull_connected) == (1800, 300, True)
    assert {"cull_idle_timeout", "cull_interval", "cull_connected"} <= set(MappingKernelManager.class_trait_names())


def test_the_culling_timeouts_follow_the_environment_variables_the_hub_run_sets():
    c = load_recipe(LAB_KERNEL_IDLE_TIMEOUT="60", LAB_SERVER_IDLE_TIMEOUT="120")
    assert server_arguments(c).MappingKernelManager.cull_idle_timeout == 60
    assert server_arguments(c).MappingKernelManager.cull_interval == 10
    assert "--timeout=120" in c.JupyterHub.services[0]["command"]


def test_the_hub_runs_the_idle_culler_as_a_service_with_the_scopes_it_needs():
    c = load_recipe()
    (service,) = c.JupyterHub.services
    assert service["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=3600"]
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == [service["name"]]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def test_servers_and_everything_they_start_get_umask_077():
    assert load_recipe().LocalProcessSpawner.popen_kwargs == {"umask": 0o077}


def test_each_learners_kernels_import_helpers_from_their_own_clone():
    c = load_recipe()
    me = SimpleNamespace(user=SimpleNamespace(name=getpass.getuser()))
    home = pwd.getpwnam(getpass.getuser()).pw_dir
    assert c.Spawner.environment["PYTHONPATH"](me) == os.path.join(home, "ws-leak-lab")
    assert c.Spawner.notebook_dir == "~/ws-leak-lab"


def test_the_recipe_sets_no_resource_limit_that_localprocessspawner_would_ignore():
    c = load_recipe()
    assert c.JupyterHub.spawner_class == "localprocess"
    assert "mem_limit" not in c.Spawner and "cpu_limit" not in c.Spawner


@pytest.mark.parametrize("setting", [
    "--KernelManager.transport_encryption=required",
    "--MappingKernelManager.cull_idle_timeout=1800",
    "--MappingKernelManager.cull_interval=300",
    "--MappingKernelManager.cull_connected=True",
    "--timeout=3600",
    '"umask": 0o077',
    "HOME_MODE=0700",
    "git clone --no-hardlinks",
])
def test_the_classroom_guide_quotes_the_recipe_as_it_is(setting):
    c = load_recipe()
    assert setting in " ".join([RECIPE.read_text(), *c.Spawner.args, *c.JupyterHub.services[0]["command"]])
    assert setting in GUIDE.read_text()


def test_the_classroom_guide_says_localprocessspawner_enforces_no_limit():
    text = re.sub(r"\s+", " ", GUIDE.read_text())
    assert "LocalProcessSpawner does not enforce" in text
