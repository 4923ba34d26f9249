"""``python -m chaoslab.proxy serve --port N --config FILE`` (how the stack runs it as a service)."""

from .cli import proxy

proxy(prog_name="python -m chaoslab.proxy")
