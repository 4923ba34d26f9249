"""Analysis of a run directory: phases, metrics, data loss, verdict (GUIDE §4, docs/metrics.md)."""

from ..experiment.names import metric_names, validate_metric_name
from .analyze import analyze, analyze_run
from .model import Analysis
from .rundata import RunData, load_run

__all__ = ["Analysis", "RunData", "analyze", "analyze_run", "load_run", "metric_names", "validate_metric_name"]
