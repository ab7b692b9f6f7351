"""Real servers: uvicorn, hypercorn, gunicorn and granian processes on loopback, driven by real
HTTP and websocket clients and real signals, for every claim about ordering across a process
boundary. Marked ``server`` (``pytest -m server``).

The app they run is ``served.py`` (built by `tests.apps.build`), and ``rig_apps.py`` the control
app without the supervisor; the helpers are ``_process.py``
(a server process, its events and output), ``rig.py`` (replicas behind a balancer, for rolling
restarts), ``_browser.py``, ``_podman.py`` and ``_demo.py``.
"""
