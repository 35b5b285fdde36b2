#!/usr/bin/env bash
# with-postgres.sh CMD… — runs CMD with a throw-away PostgreSQL cluster.
#
# Installs Debian's `postgresql` if no initdb is found, makes a cluster in a temporary
# folder (as the `postgres` user, or a system user it creates, when run as root — the server
# refuses to run as root), starts it on a free loopback port with trust auth, exports
#   HOTLINE_TEST_PG_URL=postgres://hotline@127.0.0.1:PORT/hotline_test
# and, for tests that stop and start the server (e.g. a database outage during calls),
#   HOTLINE_TEST_PG_DATA=/tmp/hotline-pg.XXXXXX/data   the cluster's folder
#   HOTLINE_TEST_PG_CTL="[runuser -u USER --] …/pg_ctl -D … -l … -t 30"
# a command prefix meant to be word-split: `$HOTLINE_TEST_PG_CTL stop -m fast` and
# `$HOTLINE_TEST_PG_CTL start` (port and settings live in the cluster's postgresql.conf, so a
# plain start brings back the same server). Then it
# runs CMD, and always stops the server and removes the folder. Exits with CMD's status.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS…]" >&2
    exit 2
fi

find_pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

PG_BIN="$(find_pg_bin || true)"
if [ -z "$PG_BIN" ]; then
    echo "with-postgres: initdb not found; installing Debian's postgresql" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN="$(find_pg_bin)"
fi

# Who runs the server: ourselves, or an unprivileged user when we are root.
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    if ! id "$PG_USER" >/dev/null 2>&1; then
        PG_USER=hotline-pg
        id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    fi
    RUN_AS=(runuser -u "$PG_USER" --)
fi

# A free loopback port: nothing answers a connection to it. Another process may still take
# it before the server binds it, so the start below tries again on a new port.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local candidate
    for _ in $(seq 1 50); do
        candidate=$(( 20000 + RANDOM % 40000 ))
        if port_free "$candidate"; then echo "$candidate"; return 0; fi
    done
    echo "with-postgres: no free port found" >&2
    return 1
}

WORK="$(mktemp -d /tmp/hotline-pg.XXXXXX)"
chmod 755 "$WORK"
if [ "${#RUN_AS[@]}" -gt 0 ]; then chown "$PG_USER" "$WORK"; fi
STARTED=0

cleanup() {
    if [ "$STARTED" -eq 1 ]; then
        "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U hotline --auth=trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 || {
    cat "$WORK/initdb.log" >&2
    exit 1
}
# The server's settings go into its own postgresql.conf (root may write it; the file keeps its
# owner), so a later `pg_ctl start` without options comes back on the same port. The port line
# is written on each attempt.
cat >>"$WORK/data/postgresql.conf" <<EOF

# with-postgres.sh: a throw-away test cluster
unix_socket_directories = '$WORK'
listen_addresses = '127.0.0.1'
fsync = off
max_connections = 200
EOF
PG_CTL=("${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -t 30)
STARTED=1
PORT=""
for attempt in 1 2 3 4 5; do
    PORT="$(pick_port)"
    sed -i '/^port = [0-9]*$/d' "$WORK/data/postgresql.conf"
    echo "port = $PORT" >>"$WORK/data/postgresql.conf"
    if "${PG_CTL[@]}" -w start >/dev/null; then break; fi
    if [ "$attempt" -lt 5 ] && grep -q "Address already in use" "$WORK/server.log"; then
        echo "with-postgres: port $PORT was taken before the server bound it; trying another" >&2
        continue
    fi
    cat "$WORK/server.log" >&2
    exit 1
done
"${RUN_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U hotline hotline_test

export HOTLINE_TEST_PG_URL="postgres://hotline@127.0.0.1:$PORT/hotline_test"
export HOTLINE_TEST_PG_DATA="$WORK/data"
export HOTLINE_TEST_PG_CTL="${PG_CTL[*]}"
echo "with-postgres: PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') at $HOTLINE_TEST_PG_URL" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
