#!/usr/bin/env bash
# System packages the full test suite drives (best effort: a test whose tool is still missing
# skips and says why): nginx for tests/deploy, Debian's chromium for the browser tests in tests/web.
here="$(dirname "$0")"
bash "$here/../deploy/install-nginx.sh" \
  || echo "warning: nginx could not be installed; the deployment test will skip" >&2
bash "$here/install-debian-package.sh" chromium chromium \
  || echo "warning: chromium could not be installed; the browser tests will skip" >&2
exit 0
