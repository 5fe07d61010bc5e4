#!/usr/bin/env bash
# Install a Debian package the tests need (nginx for the deployment test, chromium for the
# browser test) when its command is missing. Usage: install-debian-package.sh COMMAND PACKAGE...
# The first package that installs wins. Needs root or password-less sudo; a no-op when present.
set -euo pipefail
command_name="$1"
shift
found() { command -v "$command_name" >/dev/null 2>&1 || [ -x "/usr/sbin/$command_name" ]; }
if found; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install: $command_name missing and apt-get unavailable; install $* by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install: $command_name missing and not root; run: apt-get install -y $1" >&2
    exit 1
  fi
fi
# Passed through env: sudo's env_reset would drop an exported DEBIAN_FRONTEND.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
# A package's postinst may try to start a system service (nginx); policy-rc.d usually denies it
# in containers, and the tests never use the system service.
for package in "$@"; do
  if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null; then
    break
  fi
done
found
