#!/usr/bin/env bash
# Create or update the virtualenv at $1 (default .venv) with the project and its ML + dev extras.
# Re-installs only when pyproject.toml changed (its hash is stamped inside the venv).
set -euo pipefail
venv="${1:-.venv}"
here="$(cd "$(dirname "$0")/.." && pwd)"
stamp="$venv/.vas-installed"
want="$(sha256sum "$here/pyproject.toml" | cut -c1-16):$here"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# torch/torchvision come from the machine's local mirror (pip reads its config); see README.
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[ml,dev]"
echo "$want" > "$stamp"
