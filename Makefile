# The two commands a newcomer runs: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test k8s lint typecheck bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/chaoslab demo

test: setup
	$(PY) -m pytest -q tests

# The single-node Kubernetes of the `k8s` tests, built once from Debian's source (cached in
# /var/cache/chaoslab/k8s-1.20.2); `make test` runs those tests when it is there.
k8s: setup
	bash scripts/k8s.sh build

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) chaoslab-runs .pytest_cache .mypy_cache
