#!/usr/bin/env bash
# Makes sure a PostgreSQL server from Debian's packages runs on 127.0.0.1 and that the
# platform's role and database exist. Installs the server if it is missing. Idempotent.
set -euo pipefail
PGUSER_NAME="${CRM_POSTGRES_USER:-crm}"
PGPASS="${CRM_POSTGRES_PASSWORD:-crm}"
PGDB="${CRM_POSTGRES_DBNAME:-crm}"
PGPORT="${CRM_POSTGRES_PORT:-5432}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "postgres: installing the server from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
  read -r version cluster < <(pg_lsclusters -h | awk -v p="$PGPORT" '$3==p {print $1, $2; exit}') || true
  if [ -z "${version:-}" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    cluster=crm
    as_root pg_createcluster -p "$PGPORT" "$version" "$cluster" >/dev/null
  fi
  echo "postgres: starting cluster $version/$cluster on port $PGPORT"
  as_root pg_ctlcluster "$version" "$cluster" start
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p "$PGPORT"

psql_admin() { as_root su postgres -c "psql -p $PGPORT -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$PGUSER_NAME'")" != 1 ]; then
  psql_admin "CREATE ROLE $PGUSER_NAME LOGIN PASSWORD '$PGPASS' CREATEDB"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='$PGDB'")" != 1 ]; then
  psql_admin "CREATE DATABASE $PGDB OWNER $PGUSER_NAME"
fi
echo "postgres: ready at 127.0.0.1:$PGPORT, database $PGDB, role $PGUSER_NAME"
