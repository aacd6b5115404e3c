"""A JupyterHub for a class running this lab, with DockerSpawner: one container per participant.

What was and was not run: this file was NOT run here. The machine it was written on has no Docker engine, so it
was checked only as Python (``python -m py_compile``). It follows DockerSpawner's documented options
(https://jupyterhub-dockerspawner.readthedocs.io/). The hub the project did run is one-host:
docs/jupyterhub_config_one_host.py (JupyterHub 6.1.1, two Unix users, LocalProcessSpawner), where one learner's
jupyter-server-proxy reached another learner's dashboard port (docs/instructor_guide.md, "JupyterHub", has the
measurements). A container per participant is what should avoid that, by Docker's documentation: each container has
its own network namespace, so one participant's 127.0.0.1 is not another's.

Build the participants' image from this repository with repo2docker (it runs binder/postBuild, which installs the
helpers and builds notebook 02's historical stacks into the image), adding the single-user server the hub starts;
use the same JupyterHub version as the hub:

    jupyter-repo2docker --no-run --image-name ws-leak-lab:latest \
        --appendix 'RUN python -m pip install --no-cache-dir jupyterhub==5.*' .

Run the hub in a container named ``jupyterhub`` on a Docker network called ``jupyterhub``, with this file as its
configuration and ``LAB_PASSWORD`` set to the password you hand out.
"""

import os

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = "ws-leak-lab:latest"
c.DockerSpawner.network_name = "jupyterhub"
c.JupyterHub.hub_ip = "jupyterhub"          # the hub's container name, reachable from the participants' containers
c.DockerSpawner.remove = True               # a participant's container goes when their server stops
c.DockerSpawner.notebook_dir = "/home/jovyan"   # repo2docker puts the repository in the user's home
c.Spawner.default_url = "/lab/tree/notebooks/00_start_here.ipynb"

# Binder's limits, which the notebooks are measured against (07 checks its peak memory stays under 1 GB).
c.DockerSpawner.mem_limit = "2G"
c.DockerSpawner.cpu_limit = 1.0

# The time machine's stacks were built into the image by postBuild; the default cache path is inside the image.
# For a room with no network and an image built elsewhere, point LAB_CACHE at the folder that holds them.
c.DockerSpawner.environment = {"LAB_CACHE": "/home/jovyan/.cache/ws-leak-lab"}

# A workshop login: any user name, one shared password. Use a real authenticator for anything longer-lived.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["LAB_PASSWORD"]

# Culling idle servers frees memory on a busy host (jupyterhub-idle-culler, installed next to the hub).
c.JupyterHub.services = [
    {"name": "idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler", "--timeout=1800"]},
]
c.JupyterHub.load_roles = [
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
]
