#!/usr/bin/env bash
# Installs the real MultiLang clients that tests/compat runs, under tests/compat/.
# Idempotent: a second run does nothing. Needs PyPI and the npm registry.
#
#  - amazon-kclpy: its build downloads jars from Maven Central (unreachable, and not needed:
#    shardline replaces the Java daemon). The sdist is unpacked into tests/compat/.deps/ and
#    the tests put it on the child's PYTHONPATH; samples/sample_kclpy_app.py runs unmodified.
#  - aws-kcl (Node): npm install into tests/compat/node/node_modules.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
deps="$here/.deps"
KCLPY_VERSION=3.2.0
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3

mkdir -p "$deps"
kclpy="$deps/amazon_kclpy-$KCLPY_VERSION"
if [ ! -f "$kclpy/samples/sample_kclpy_app.py" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --quiet --no-deps --no-binary :all: \
    "amazon-kclpy==$KCLPY_VERSION" -d "$tmp"
  tar xzf "$tmp/amazon_kclpy-$KCLPY_VERSION.tar.gz" -C "$deps"
  echo "amazon-kclpy $KCLPY_VERSION unpacked in $kclpy"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "install.sh: node and npm are needed for the aws-kcl compat test" >&2
    exit 1
  fi
fi
if [ ! -f "$here/node/node_modules/aws-kcl/package.json" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
  echo "aws-kcl installed in $here/node/node_modules"
fi
