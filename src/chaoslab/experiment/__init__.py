"""The experiment file: its model (pydantic), the loader with line-accurate errors, the metric
names a hypothesis may use, the workload and its poison, overlays, and Chaos Toolkit import."""
