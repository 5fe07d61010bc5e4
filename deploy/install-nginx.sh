#!/usr/bin/env bash
# Make sure nginx is installed (the deployment test runs it as the load balancer).
# Debian/Ubuntu: nginx-light (or nginx) from the distribution. Needs root; no-op when present.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-nginx: nginx missing and apt-get unavailable; install nginx by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-nginx: nginx missing and not root; run: apt-get install -y nginx-light" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# The package's postinst may try to start a system nginx; policy-rc.d usually denies it in
# containers, and the test never uses the system service.
$SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
  || $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
