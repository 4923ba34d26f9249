# The two commands a newcomer runs: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-k8s k8s lint typecheck bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/chaoslab demo

# Two pytest-xdist workers, one test folder at a time each (tests/conftest.py groups them): most
# tests wait on fault windows, so the two overlap (docs/testing.md has the figures).
# The Kubernetes cluster tests (marker k8s) run apart, with `make test-k8s`: they take minutes
# on top of the 20-minute suite (figures in docs/kubernetes.md).
test: setup
	$(PY) -m pytest -q -m "not k8s" -n 2 --dist loadgroup tests

test-k8s: k8s
	$(PY) -m pytest -q -m k8s tests/platforms/kubernetes tests/discover/test_discover_cluster.py

# The single-node Kubernetes of the `k8s` tests, built once from Debian's source (cached in
# /var/cache/chaoslab/k8s-1.20.2); `make test-k8s` runs the cluster tests on it.
k8s: setup
	bash scripts/k8s.sh build

lint: setup
	$(VENV)/bin/ruff check src systems tests bench examples
	$(VENV)/bin/mypy

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) chaoslab-runs .pytest_cache .mypy_cache
