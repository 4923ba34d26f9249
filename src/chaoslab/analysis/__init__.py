"""Analysis of a run directory: phases, metrics, data loss, verdict (GUIDE §4, docs/metrics.md)."""

from .analyze import analyze
from .names import metric_names, validate_metric_name

__all__ = ["analyze", "metric_names", "validate_metric_name"]
