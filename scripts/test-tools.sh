#!/usr/bin/env bash
# What `make test` needs beyond the Python packages: Debian's chromium for
# the browser tests, node and npm for the conformance suite. Installs what
# is missing when it can (as root, as .ci/run does); otherwise says what is
# missing and fails, so no test is ever skipped for want of a tool.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
  else
    echo "make test needs: ${missing[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi
