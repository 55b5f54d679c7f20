#!/usr/bin/env bash
# The test command from README.md: every crate's unit, integration and doc tests.
#
#   scripts/test.sh [cargo test args…]      e.g. scripts/test.sh -p ferrotune-postgres
#
# The PostgreSQL storage tests need a server. Unless FERROTUNE_TEST_POSTGRES_URL is already
# set (then that server is used as is), this script starts a throwaway PostgreSQL cluster for
# the duration of the run:
#   - installs Debian's `postgresql` package when no PostgreSQL binaries are found (as root,
#     or through passwordless sudo);
#   - runs initdb into a fresh temporary directory (as the `postgres` user when run as root:
#     PostgreSQL refuses to run as root), listening on 127.0.0.1 only, on a free port, with a
#     password-protected test role and database and, when openssl is available, TLS with a
#     freshly generated CA (FERROTUNE_TEST_POSTGRES_CA points at it);
#   - exports FERROTUNE_TEST_POSTGRES_URL=postgres://ferrotune:…@127.0.0.1:PORT/ferrotune_test;
#   - runs `cargo test --workspace --locked "$@"` (without --workspace when "$@" names
#     packages with -p);
#   - stops the cluster and deletes its directory (also on failure or Ctrl-C).
# Without a server the PostgreSQL tests skip with a notice, except under CI (CI set), where
# they fail. FERROTUNE_TEST_POSTGRES=0 skips the server set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }
ARGS=("$@")
# The whole workspace, unless packages are named (`--workspace -p x` would test everything).
SCOPE=(--workspace)
for a in "$@"; do
    case $a in
    -p | -p* | --package | --package=*) SCOPE=() ;;
    esac
done

if [[ -n "${FERROTUNE_TEST_POSTGRES_URL:-}" || "${FERROTUNE_TEST_POSTGRES:-1}" == 0 ]]; then
    exec cargo test ${SCOPE[@]+"${SCOPE[@]}"} --locked "$@"
fi

# --- privileges --------------------------------------------------------------------------
SUDO=()
if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
fi
can_root() { [[ $EUID -eq 0 || ${#SUDO[@]} -gt 0 ]]; }

# --- find or install PostgreSQL ------------------------------------------------------------
find_pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

PG_BIN=$(find_pg_bin || true)
if [[ -z $PG_BIN ]] && command -v apt-get >/dev/null && can_root; then
    log "PostgreSQL not found; installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    ${SUDO[@]+"${SUDO[@]}"} apt-get update -qq
    ${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(find_pg_bin || true)
fi

in_ci() { [[ -n ${CI:-} && ${CI:-} != 0 && ${CI:-} != false ]]; }

setup_failed() {
    if in_ci; then
        log "ERROR: $* (CI is set, so the PostgreSQL tests cannot be skipped)"
        exit 1
    fi
    log "WARNING: $*; the PostgreSQL tests will be skipped"
    if declare -F cleanup >/dev/null; then
        cleanup
        trap - EXIT
    fi
    exec cargo test ${SCOPE[@]+"${SCOPE[@]}"} --locked ${ARGS[@]+"${ARGS[@]}"}
}
if [[ -z $PG_BIN ]]; then
    setup_failed "no PostgreSQL binaries (initdb, pg_ctl) found and they cannot be installed here (install the postgresql package, or set FERROTUNE_TEST_POSTGRES_URL)"
fi

# --- run PostgreSQL's tools as a non-root user ----------------------------------------------
PG_USER=$(id -un)
if [[ $EUID -eq 0 ]]; then
    PG_USER=postgres
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    fi
fi
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

# --- clean up clusters left behind by killed runs --------------------------------------------
for old in "${TMPDIR:-/tmp}"/ferrotune-pg-test.*; do
    [[ -d $old ]] || continue
    owner=$(cat "$old/owner.pid" 2>/dev/null || echo 0)
    if [[ $owner != 0 ]] && kill -0 "$owner" 2>/dev/null; then
        continue # another run in progress
    fi
    if [[ -f $old/data/postmaster.pid ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$old/data" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$old"
done

# --- a throwaway cluster ------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferrotune-pg-test.XXXXXX")
echo $$ >"$WORK/owner.pid"
chmod 755 "$WORK"
DATA=$WORK/data
mkdir "$DATA"
if [[ $EUID -eq 0 ]]; then
    chown "$PG_USER" "$WORK" "$DATA"
fi

cleanup() {
    if [[ -f $DATA/postmaster.pid ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$DATA" stop -m fast -w >/dev/null 2>&1 ||
            as_pg "$PG_BIN/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --no-locale --no-sync >"$WORK/initdb.log" 2>&1; then
    cat "$WORK/initdb.log" >&2
    setup_failed "initdb failed"
fi

# TLS with a CA made for this run (optional: needs openssl).
SSL_OPTS=()
CA=""
if command -v openssl >/dev/null; then
    if (
        cd "$DATA" &&
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
                -subj "/CN=ferrotune test CA" -keyout ca.key -out ca.crt &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext &&
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile san.ext -out server.crt
    ) >"$WORK/openssl.log" 2>&1; then
        cp "$DATA/ca.crt" "$WORK/ca.crt"
        chmod 644 "$WORK/ca.crt"
        chmod 600 "$DATA/server.key"
        [[ $EUID -eq 0 ]] && chown "$PG_USER" "$DATA"/server.* "$DATA"/ca.*
        SSL_OPTS=(-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key)
        CA=$WORK/ca.crt
    else
        log "openssl could not make a test certificate; TLS tests will be skipped"
    fi
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free port: a random one that nothing listens on; another one if the server finds it taken.
PORT=""
LOG=$WORK/postgres.log
for _ in $(seq 1 10); do
    candidate=$((20000 + RANDOM % 40000))
    port_in_use "$candidate" && continue
    if as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start -o \
        "-p $candidate -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${SSL_OPTS[*]-}" \
        >"$WORK/pg_ctl.out" 2>&1; then
        PORT=$candidate
        break
    fi
    grep -qs "already in use" "$LOG" || break
done
if [[ -z $PORT ]]; then
    cat "$WORK/pg_ctl.out" >&2 || true
    tail -20 "$LOG" >&2 || true
    setup_failed "the throwaway PostgreSQL cluster did not start"
fi

PASSWORD="ft-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DATA" -p "$PORT" -U postgres -d postgres \
    -c "CREATE ROLE ferrotune LOGIN PASSWORD '$PASSWORD'" \
    -c "CREATE DATABASE ferrotune_test OWNER ferrotune" >/dev/null

export FERROTUNE_TEST_POSTGRES_URL="postgres://ferrotune:$PASSWORD@127.0.0.1:$PORT/ferrotune_test"
if [[ -n $CA ]]; then
    export FERROTUNE_TEST_POSTGRES_CA=$CA
fi
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (throwaway cluster in $WORK)"

# Not exec: the trap stops the cluster afterwards. FERROTUNE_WITH_POSTGRES runs another
# command against the cluster instead of the tests (scripts/bench_storage_vs_peers.sh).
if [[ -n "${FERROTUNE_WITH_POSTGRES:-}" ]]; then
    bash -c "$FERROTUNE_WITH_POSTGRES"
else
    cargo test ${SCOPE[@]+"${SCOPE[@]}"} --locked ${ARGS[@]+"${ARGS[@]}"}
fi
