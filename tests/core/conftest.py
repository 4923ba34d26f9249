"""The core tests use the example service of tests/conftest.py."""

from tests.conftest import Service, start_service, stop_service

__all__ = ["Service", "start_service", "stop_service"]
