#!/usr/bin/env bash
# Make sure nginx is installed (the deployment test runs it as the load balancer):
# Debian's nginx-light, or nginx. Needs root; a no-op when present.
exec "$(dirname "$0")/../scripts/install-debian-package.sh" nginx nginx-light nginx
