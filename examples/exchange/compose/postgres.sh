#!/bin/sh
# Entry point of chaoslab/exchange-postgres:1 (scripts/images.sh): Debian's PostgreSQL 15 from the
# host's /usr (bind-mounted read-only), initialised on first start into the data volume. It runs
# as the image's `postgres` user because initdb refuses root. The role and database are created
# in single-user mode before the first real start, so the DSN works as soon as pg_isready does.
set -eu
bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
  "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C --no-sync >/dev/null
  # Clients come from the Compose network (the fault proxy) and, through the published port, from
  # the bridge's gateway: password authentication from any address of this private network.
  echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
  "$bin/postgres" --single -D "$data" -c unix_socket_directories= postgres >/dev/null <<SQL
CREATE ROLE "${PG_USER:-trader}" LOGIN PASSWORD '${PG_PASSWORD:-trader}';
CREATE DATABASE "${PG_DATABASE:-exchange}" OWNER "${PG_USER:-trader}";
SQL
fi
exec "$bin/postgres" -D "$data" -p 5432 -c listen_addresses='*' -c unix_socket_directories= \
  -c max_connections="${PG_MAX_CONNECTIONS:-100}" -c fsync=on -c shared_buffers=64MB \
  -c logging_collector=off "$@"
