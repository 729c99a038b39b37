#!/usr/bin/env bash
# Makes sure tests/postgres can start a throwaway PostgreSQL cluster. Idempotent.
#
#  - Server binaries (initdb, pg_ctl, postgres), looked up in /usr/lib/postgresql/*/bin and
#    on PATH. When they are missing and we are root with apt-get, Debian's `postgresql`
#    package is installed, and the cluster its install starts is stopped again: the tests
#    run their own cluster.
#  - PostgreSQL refuses to run as root, so as root an unprivileged OS user, shardline-pg,
#    owns and runs the test clusters (tests/postgres/server.py uses the same name).
#    As a normal user, the current user runs them and nothing is created.
#
# Prints one line saying what it did.
set -euo pipefail
PG_OS_USER=shardline-pg

server_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null \
    && command -v postgres >/dev/null; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

stop_distribution_clusters() {
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _port status _rest; do
      case "$status" in
        online*) pg_ctlcluster --force "$version" "$name" stop >/dev/null 2>&1 || true ;;
      esac
    done
  fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now postgresql >/dev/null 2>&1 || true
  fi
  service postgresql stop >/dev/null 2>&1 || true
}

is_root=false
[ "$(id -u)" = 0 ] && is_root=true
done_what=()

if ! bindir="$(server_bindir)"; then
  if $is_root && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    wait_for_lock=(-o DPkg::Lock::Timeout=300)  # another apt-get may be running (CI images)
    # Quiet on success (apt and debconf chatter), the whole output on failure.
    if ! apt_output="$(apt-get "${wait_for_lock[@]}" update -qq 2>&1 \
      && apt-get "${wait_for_lock[@]}" install -y -qq postgresql 2>&1)"; then
      echo "$apt_output" >&2
      echo "install.sh: apt-get install postgresql failed" >&2
      exit 1
    fi
    stop_distribution_clusters
    bindir="$(server_bindir)" || {
      echo "install.sh: apt-get installed postgresql but initdb/pg_ctl/postgres are not found" >&2
      exit 1
    }
    done_what+=("installed PostgreSQL from apt ($bindir)")
  else
    echo "install.sh: PostgreSQL server binaries (initdb, pg_ctl, postgres) are missing;" \
      "run this script as root on Debian/Ubuntu, or install the postgresql package" >&2
    exit 1
  fi
fi

if $is_root; then
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      "$PG_OS_USER"
    done_what+=("created OS user $PG_OS_USER")
  fi
  run_as="$PG_OS_USER"
else
  run_as="$(id -un)"
fi

if [ ${#done_what[@]} -eq 0 ]; then
  echo "install.sh: nothing to do (PostgreSQL in $bindir, clusters run as $run_as)"
else
  joined="$(printf '%s; ' "${done_what[@]}")"
  echo "install.sh: ${joined%; } (clusters run as $run_as)"
fi
