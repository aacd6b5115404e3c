"""A one-host JupyterHub running this lab: real Unix users, PAM logins, LocalProcessSpawner. Everything on 127.0.0.1.

This is the configuration the project RAN to measure what one learner can reach of another's kernel on a hub
where every user's server runs on the same machine (results in docs/instructor_guide.md, "JupyterHub"; the
measurement is ``benchmarks/hub_isolation.py``). It is a test bed, not a class set-up: it listens on 127.0.0.1
only, over plain HTTP. For a class, prefer a hub that gives each user a network namespace of their own
(docs/jupyterhub_config.py, DockerSpawner).

Set-up that was run (as root, Debian 12, Python 3.11 from Debian: the single-user servers run as the learners,
who must be able to execute the venv's interpreter, so do not build it on a Python under /root):

    python3 -m venv /tmp/hubenv
    /tmp/hubenv/bin/pip install jupyterhub /path/to/this/repository   # the lab (its pins) + the hub
    npm install --prefix /tmp/chp configurable-http-proxy
    for u in learner1 learner2; do
        useradd -m -s /bin/bash $u && echo "$u:CHOOSE-A-PASSWORD" | chpasswd
        cp -r /path/to/this/repository/notebooks /home/$u/ && chown -R $u:$u /home/$u/notebooks
    done
    mkdir -p /tmp/hubrun && cd /tmp/hubrun      # the hub's sqlite database and cookie secret go here
    PATH=/tmp/chp/node_modules/.bin:$PATH \
        /tmp/hubenv/bin/jupyterhub -f /path/to/this/repository/docs/jupyterhub_config_one_host.py

Then log in at http://127.0.0.1:18000/ as learner1 or learner2 with their Unix password. An API token for the
measurement: ``/tmp/hubenv/bin/jupyterhub token learner1`` (run in /tmp/hubrun, with the same ``-f`` config), or
the hub's Token page. Stopping the hub (Ctrl-C) stops the users' servers too (``cleanup_servers``, the default).
Remove the users afterwards with ``userdel -r learner1`` (and learner2).

The hub must run as root: PAM checks the passwords, and LocalProcessSpawner starts each server as its Unix user.
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

# Every port on loopback. Public proxy, proxy API and hub API on fixed ports (change them with these variables).
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("LAB_HUB_PORT", "18000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("LAB_HUB_API_PORT", "18081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('LAB_PROXY_API_PORT', '18001')}"

# Real Unix users, checked by PAM (JupyterHub's default authenticator), and only these two.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(os.environ.get("LAB_USERS", "learner1 learner2").split())

# Each user's server runs as that user, on this host, on 127.0.0.1 and a random port (LocalProcessSpawner's
# defaults). It runs the lab's environment: the venv the hub itself runs from, where the lab (JupyterLab,
# jupyter-server-proxy, the helpers) and jupyterhub-singleuser (same JupyterHub version as the hub) are installed.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(sys.prefix, "bin", "jupyterhub-singleuser")]
c.Spawner.ip = "127.0.0.1"
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/notebooks/08_browser.ipynb"
c.Spawner.start_timeout = 120   # a first JupyterLab start on a busy 2-core machine
c.Spawner.http_timeout = 120
