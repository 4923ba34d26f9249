#!/usr/bin/env bash
# Builds the offline images the Docker tests and demos use (no registry is reachable here).
# Idempotent and cached: an image already present is skipped.
#
#   chaoslab/busybox:1  a static busybox tree (sh, httpd, nc, sleep, ...); ENV PATH=/bin
#   chaoslab/host:1     an almost empty root whose /usr is meant to be the host's, bind-mounted
#                       read-only (-v /usr:/usr:ro): Debian's python3, redis-server or postgres
#                       then run in a container without any image of their own; add the venv and
#                       the interpreter it was made from (same paths, read-only) for the project's
#                       Python dependencies (docs/containers.md).
#   chaoslab/exchange-postgres:1
#                       chaoslab/host:1 plus a `postgres` user, its data directory and an entry
#                       point that initialises the exchange's database (initdb refuses root):
#                       the PostgreSQL of examples/exchange/compose.yaml (docs/exchange.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

have() { docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! have chaoslab/busybox:1; then
  root=$work/busybox
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,www,var/run}
  cp /usr/bin/busybox "$root/bin/busybox"
  # One link per applet; never a link named busybox (it would point at itself).
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  echo ok > "$root/www/health"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - chaoslab/busybox:1 >/dev/null
  echo "images.sh: built chaoslab/busybox:1"
fi

if ! have chaoslab/host:1; then
  root=$work/host
  mkdir -p "$root"/{usr,etc,tmp,proc,sys,dev,run,var/run,var/lib,data}
  # Debian 12 is usr-merged: these links make the bind-mounted /usr a whole system.
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp" "$root/data"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    -c 'CMD ["/bin/sh"]' - chaoslab/host:1 >/dev/null
  echo "images.sh: built chaoslab/host:1"
fi

# docker build from local files only: the base is the local chaoslab/host:1, nothing is pulled.
if ! have chaoslab/exchange-postgres:1; then
  ctx=$work/exchange-postgres
  mkdir -p "$ctx/empty"
  cp "$here/examples/exchange/compose/Dockerfile.postgres" "$ctx/Dockerfile"
  cp "$here/examples/exchange/compose/postgres.sh" "$ctx/postgres.sh"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' > "$ctx/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\npostgres:x:999:\n' > "$ctx/group"
  # The legacy builder's deprecation notice is noise; its output is shown only on failure.
  if ! out=$(docker build -q --pull=false -t chaoslab/exchange-postgres:1 "$ctx" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "images.sh: built chaoslab/exchange-postgres:1"
fi
