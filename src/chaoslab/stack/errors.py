"""Errors of the local stack. File mistakes are ``InputError`` (exit 2); the rest are ``StackError``
(exit 4), which lives in the one error tree of ``chaoslab.errors``."""

from __future__ import annotations

from ..errors import StackError

__all__ = ["StackError"]
