"""``chaoslab serve``: the web console (docs/console.md).

An ASGI app over the runs directory (the read side: index.py, rundir.py, live.py) and
``chaoslab run`` child processes (the write side: actions.py), behind security.py's guard.
"""
