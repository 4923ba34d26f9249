"""Open-model load generation and its history of operations (GUIDE §4, docs/metrics.md)."""

from .driver import Result
from .generator import LoadGenerator
from .history import Operation
from .python import Refused

__all__ = ["LoadGenerator", "Operation", "Refused", "Result"]
