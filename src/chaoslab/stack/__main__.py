"""``python -m chaoslab.stack up FILE`` — the stack CLI without the main entry point."""

from .cli import main

main()
