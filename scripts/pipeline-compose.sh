#!/usr/bin/env bash
# docker-compose for examples/pipeline/compose.yaml, with the absolute paths it bind-mounts filled in:
# the venv (VENV, default .venv of this checkout) and the interpreter it was made from.
#   scripts/pipeline-compose.sh up -d          project ${PIPELINE_PROJECT:-pipeline}, net ${PIPELINE_NET:-10.232.0}.0/24
#   scripts/pipeline-compose.sh ps | logs broker | down -t 0
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$(cd "${VENV:-$root/.venv}" && pwd)
# the venv's python is a link to its base interpreter; mount that installation's prefix too
base=$(dirname "$(dirname "$(readlink -f "$venv/bin/python")")")
[ -x "$venv/bin/python" ] || { echo "pipeline-compose: no venv at $venv (VENV=...)" >&2; exit 2; }
export PIPELINE_VENV=$venv PIPELINE_PYBASE=$base
exec docker-compose -p "${PIPELINE_PROJECT:-pipeline}" -f "$root/examples/pipeline/compose.yaml" "$@"
