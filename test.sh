#!/usr/bin/env bash
# The whole imslab test suite: installs the real peers the tests use (when run as root), then
# runs formatting, clippy, every unit/integration/end-to-end test, and checks the fuzz targets
# build. With CI=true a missing tool is a failure, never a skip.
#
#   ./test.sh            everything
#   ./test.sh -E 'package(imslab-sip)'   pass a nextest filter to run a subset
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages of the real peers and tools the tests drive.
APT_PACKAGES=(sip-tester tshark freediameter freediameter-extensions postgresql libxml2-utils
              iproute2 strace dnsmasq-base)
# PyPI packages used by independent test clients, as package:module (GTPv2-C via pycrate,
# Milenage via cryptography).
PIP_PACKAGES=(pycrate:pycrate_core cryptography:cryptography)
# Programs that must be on PATH (or in sbin) after installation.
REQUIRED=(sipp tshark freeDiameterd xmllint ip strace python3 initdb dnsmasq)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ||
         compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null; }

missing_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$p")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing_apt[@]}" >/dev/null
  else
    echo "test.sh: missing packages (run as root to install): ${missing_apt[*]}" >&2
  fi
fi
for p in "${PIP_PACKAGES[@]}"; do
  python3 -c "import ${p#*:}" 2>/dev/null ||
    python3 -m pip install -q --root-user-action=ignore "${p%%:*}" || true
done
# PostgreSQL binaries are not on PATH in Debian.
for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH

absent=()
for t in "${REQUIRED[@]}"; do have "$t" || absent+=("$t"); done
for p in "${PIP_PACKAGES[@]}"; do
  python3 -c "import ${p#*:}" 2>/dev/null || absent+=("python:${p%%:*}")
done
if [ ${#absent[@]} -gt 0 ]; then
  echo "test.sh: required tools are missing: ${absent[*]}" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "test.sh: the tests that need them will fail" >&2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Every step runs; the script fails at the end if any failed, naming them.
failed=()
step() {
  local name=$1; shift
  echo "== $name"
  if ! "$@"; then failed+=("$name"); fi
}
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "fuzz targets build" cargo check --manifest-path fuzz/Cargo.toml --quiet
step "tests" cargo nextest run --workspace --no-fail-fast "$@"
step "doc tests" cargo test --workspace --doc --quiet
if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED steps: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all steps passed"
