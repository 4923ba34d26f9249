"""Errors of the local stack. File mistakes are ``InputError`` (exit 2); these are the rest."""

from __future__ import annotations

from ..errors import ChaoslabError


class StackError(ChaoslabError):
    """The stack could not be brought up, stopped or reached (exit 4). One line, says what to do."""

    exit_code = 4
