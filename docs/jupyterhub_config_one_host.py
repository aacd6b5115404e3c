"""A one-host JupyterHub for a class running this lab: real Unix users, PAM logins, LocalProcessSpawner, 127.0.0.1.

docs/classroom_hub.md is the recipe as it was run (JupyterHub 6.1.1, Debian 12, two real Unix users), what was
checked on it, and how many cores and GiB thirty learners need. This file is that hub's configuration. It listens on
127.0.0.1 over plain HTTP: put a TLS reverse proxy in front of it for a room (https://jupyterhub.readthedocs.io/en/
stable/howto/configuration/config-proxy.html). Every learner's server and kernels run on this one host, as their
own Unix user, and share its loopback: a learner's lab servers are theirs alone only as far as the lab's own
isolation holds. A hub that gives each user a container (docs/jupyterhub_config.py) shares less.

Set-up, as root (the full commands and their checks: docs/classroom_hub.md):

    /usr/bin/python3 -m venv /srv/lab/venv      # Debian's python3: learners must be able to execute it
    /srv/lab/venv/bin/pip install jupyterhub jupyterhub-idle-culler /path/to/this/repository \
        /path/to/this/repository/ws-leakcheck   # the leak checker, a distribution of its own
    npm install --prefix /srv/lab/chp configurable-http-proxy
    for u in learner1 learner2; do
        useradd -m -K HOME_MODE=0700 -s /bin/bash $u && echo "$u:CHOOSE-A-PASSWORD" | chpasswd
        (umask 077 && git clone --no-hardlinks /path/to/this/repository /home/$u/ws-leak-lab)
        chown -R $u:$u /home/$u/ws-leak-lab
    done
    mkdir -p /srv/lab/run && cd /srv/lab/run     # the hub's database and cookie secret go here
    LAB_USERS="learner1 learner2" PATH=/srv/lab/chp/node_modules/.bin:$PATH \
        /srv/lab/venv/bin/jupyterhub -f /path/to/this/repository/docs/jupyterhub_config_one_host.py

``--no-hardlinks`` matters: a plain ``git clone`` of a local path hard-links ``.git/objects``, and the ``chown -R``
that follows then hands the source's own object files to the learner. ``umask 077`` makes the clone private.

CPU and memory limits: LocalProcessSpawner does not enforce ``Spawner.mem_limit`` or ``Spawner.cpu_limit`` (its own
help text says so), so this file sets neither. For limits, use a spawner that applies them, e.g. SystemdSpawner
(each server in a systemd unit with MemoryMax/CPUQuota: https://github.com/jupyterhub/systemdspawner), as The
Littlest JupyterHub does (https://tljh.jupyter.org/). Not run here.
"""

import os
import pwd
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

CLONE = "ws-leak-lab"
"""Each learner's own clone of the lab, in their home: their notebook folder, and where their kernels import
``helpers`` from."""

# Every port on loopback. Public proxy, proxy API and hub API on fixed ports (change them with these variables).
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("LAB_HUB_PORT", "18000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("LAB_HUB_API_PORT", "18081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('LAB_PROXY_API_PORT', '18001')}"

# Real Unix users, checked by PAM (JupyterHub's default authenticator), and only these.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(os.environ.get("LAB_USERS", "learner1 learner2").split())

# Each user's server runs as that user, on 127.0.0.1 and a random port (LocalProcessSpawner's defaults), from the
# venv the hub runs from: JupyterLab, jupyter-server-proxy, the lab's pinned packages, and jupyterhub-singleuser of
# the hub's own version.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(sys.prefix, "bin", "jupyterhub-singleuser")]
c.Spawner.ip = "127.0.0.1"
c.Spawner.notebook_dir = f"~/{CLONE}"
c.Spawner.default_url = "/lab/tree/notebooks/00_start_here.ipynb"
c.Spawner.start_timeout = 120   # a first JupyterLab start on a busy 2-core machine
c.Spawner.http_timeout = 120


def learner_clone(spawner):
    """The learner's clone, first on their kernels' sys.path: an edit to their ``helpers/`` takes effect there."""
    return os.path.join(pwd.getpwnam(spawner.user.name).pw_dir, CLONE)


c.Spawner.environment = {"PYTHONPATH": learner_clone}

# Learners' files are private: the server, its kernels and everything they start create files 0600 and folders
# 0700 (IPython's history.sqlite and notebooks saved by JupyterLab included). Homes are 0700 (useradd above).
c.LocalProcessSpawner.popen_kwargs = {"umask": 0o077}

# Culling. A kernel idle this long is shut down even with its notebook open in a tab (JupyterLab keeps every opened
# notebook's kernel running); a server with no activity this long is stopped by the hub's idle culler.
KERNEL_IDLE = int(os.environ.get("LAB_KERNEL_IDLE_TIMEOUT", "1800"))
SERVER_IDLE = int(os.environ.get("LAB_SERVER_IDLE_TIMEOUT", "3600"))

c.Spawner.args = [
    # Kernel messages are encrypted (CurveZMQ keys provisioned by the server; ipykernel's kernelspec declares
    # support): another user on this host who connects to a kernel's loopback ports reads nothing. A kernel that
    # cannot be encrypted does not start.
    "--KernelManager.transport_encryption=required",
    f"--MappingKernelManager.cull_idle_timeout={KERNEL_IDLE}",
    f"--MappingKernelManager.cull_interval={max(10, min(300, KERNEL_IDLE // 6))}",
    "--MappingKernelManager.cull_connected=True",
]

c.JupyterHub.services = [
    {"name": "jupyterhub-idle-culler-service",
     "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={SERVER_IDLE}"]},
]
c.JupyterHub.load_roles = [
    {"name": "jupyterhub-idle-culler-role", "services": ["jupyterhub-idle-culler-service"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
]
