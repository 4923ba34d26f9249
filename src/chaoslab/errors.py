"""The exit codes and the error hierarchy. Each error carries the exit code the CLI returns for it
(GUIDE §3) and is printed as one line, never a traceback::

    ChaoslabError                    base of every error chaoslab raises on purpose (exit 4)
    ├── InputError                   the user's input is invalid; nothing was injected (exit 2)
    └── CouldNotRun                  the run could not be carried out on this machine (exit 4)
        ├── CapabilityError          the machine lacks root, a controller, a tool (doctor's reason)
        ├── TargetError              a target did not resolve, or broke its blast radius
        ├── FaultError               a fault could not be injected or reverted
        ├── LedgerError              the fault ledger holds a dead run's faults, or cannot be written
        ├── StackError               the local stack could not be brought up, stopped or reached
        └── ProxyApiError            the proxy API answered an error, or was unreachable

An abort (stop condition, halt, signal) is not an error: the runner reverts and ends the run
with ``ExitCode.ABORTED``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``chaoslab run`` (and ``suite``, ``report``, the plugin) exits with."""

    HELD = 0
    """The hypothesis held."""
    OK = 0
    """(Alias of HELD) a command other than ``run`` did what it was asked."""
    VIOLATED = 1
    """The hypothesis was violated (a finding, not a failure of chaoslab)."""
    INVALID_INPUT = 2
    """The experiment file or the command line is invalid; nothing was injected."""
    ABORTED = 3
    """A stop condition, halt or signal ended the run (after reverting)."""
    COULD_NOT_RUN = 4
    """chaoslab could not carry out the run (capability, target, fault, ledger, stack, internal)."""


VERDICT_CODES = frozenset({ExitCode.HELD, ExitCode.VIOLATED})
"""The codes of a run that reached a verdict."""


class ChaoslabError(Exception):
    """Base of every error chaoslab raises on purpose. The CLI prints it as one line."""

    exit_code: ExitCode = ExitCode.COULD_NOT_RUN


class InputError(ChaoslabError):
    """The user's input is invalid. Nothing was injected."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class CouldNotRun(ChaoslabError):
    """The run could not be carried out here; what was injected has been reverted."""

    exit_code = ExitCode.COULD_NOT_RUN


class CapabilityError(CouldNotRun):
    """The machine cannot run this fault (no root, controller missing, tool absent).

    ``reason`` is the doctor's sentence; ``instead`` names what to use instead, when there is one.
    """

    def __init__(self, reason: str, instead: str | None = None) -> None:
        self.reason = reason
        self.instead = instead
        super().__init__(reason + (f" (use {instead} instead)" if instead else ""))


class TargetError(CouldNotRun):
    """A target could not be resolved, or resolved to more than its blast radius allows."""


class FaultError(CouldNotRun):
    """A fault could not be injected or reverted."""


class LedgerError(CouldNotRun):
    """The fault ledger holds unreverted entries of a dead run, or cannot be written."""


class StackError(CouldNotRun):
    """The stack could not be brought up, stopped or reached. One line, says what to do."""


class ProxyApiError(CouldNotRun):
    """The API answered with an error (``status`` is its HTTP code) or was unreachable (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status == 0


__all__ = ["VERDICT_CODES", "CapabilityError", "ChaoslabError", "CouldNotRun", "ExitCode", "FaultError",
           "InputError", "LedgerError", "ProxyApiError", "StackError", "TargetError"]
