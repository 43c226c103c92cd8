#!/usr/bin/env bash
# CI: Debian's redis-server for the distributed-eval test (test/eval-queue.test.ts starts its own instance on a
# free loopback port in a temp dir and shuts it down). The package's system service is kept from starting
# during the install (policy-rc.d), since nothing uses it.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  echo "ci-redis: $(redis-server --version)"
  exit 0
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
echo "ci-redis: installed $(redis-server --version)"
