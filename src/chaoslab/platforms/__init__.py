"""Platforms that hold targets outside this host's process table (Docker, Kubernetes)."""
