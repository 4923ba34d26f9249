"""The error hierarchy. Each class carries the exit code the CLI returns for it (GUIDE §3)."""

from __future__ import annotations


class ChaoslabError(Exception):
    """Base of every error chaoslab raises on purpose. The CLI prints it as one line."""

    exit_code: int = 4


class InputError(ChaoslabError):
    """The user's input is invalid. Nothing was injected."""

    exit_code = 2

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


class CapabilityError(ChaoslabError):
    """The machine cannot run this fault (no root, controller missing, tool absent).

    ``reason`` is the doctor's sentence; ``instead`` names what to use instead, when there is one.
    """

    exit_code = 4

    def __init__(self, reason: str, instead: str | None = None) -> None:
        self.reason = reason
        self.instead = instead
        super().__init__(reason + (f" (use {instead} instead)" if instead else ""))


class TargetError(ChaoslabError):
    """A target could not be resolved, or resolved to more than its blast radius allows."""

    exit_code = 4


class FaultError(ChaoslabError):
    """A fault could not be injected or reverted."""

    exit_code = 4


class LedgerError(ChaoslabError):
    """The fault ledger holds unreverted entries of a dead run, or cannot be written."""

    exit_code = 4


class Aborted(ChaoslabError):
    """The run was aborted by a stop condition, halt or signal (after reverting)."""

    exit_code = 3
