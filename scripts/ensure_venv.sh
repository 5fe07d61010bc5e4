#!/usr/bin/env bash
# Create or update the virtualenv at $1 (default .venv) with the project and the extras in $2
# (a comma list, default ml): `make run` asks for `ml`, what serving and analysing need;
# `make test` for `ml,dev,tf`, which adds the test tools and TensorFlow. Each extra is stamped inside the venv
# with pyproject.toml's hash, so only the extras not yet installed for this pyproject.toml are
# installed (`make run` then `make test` adds just `dev` and `tf`), and nothing when all are. pip's
# output goes to <venv>/pip-install.log; the terminal says what is being installed, that it is
# still going, and how long it took (its last lines on failure).
set -euo pipefail
venv="${1:-.venv}"
extras="${2:-ml}"
here="$(cd -P "$(dirname "$0")/.." && pwd)"
want="$(sha256sum "$here/pyproject.toml" | cut -c1-16):$here"

describe() {
  case "$1" in
    ml) echo "the runtime (FastAPI, PyAV, PyTorch, pytorchvideo, ONNX Runtime)" ;;
    dev) echo "the test tools (pytest, ruff, mypy, schemathesis, playwright, hadolint)" ;;
    tf) echo "TensorFlow and LiteRT (the tflite / tf-savedmodel exports and their tests)" ;;
    *) echo "the '$1' extra" ;;
  esac
}

missing=()
IFS=, read -ra wanted <<<"$extras"
for extra in "${wanted[@]}"; do
  stamp="$venv/.vas-installed-$extra"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    missing+=("$extra")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating the virtualenv $venv"
  python3 -m venv "$venv"
fi
# By its physical path: pip writes it into the console scripts' #! lines (a venv reached through a
# symlink must not get the symlink's path baked in).
python="$(cd -P "$venv/bin" && pwd)/python"
list="$(IFS=,; echo "${missing[*]}")"
for extra in "${missing[@]}"; do
  echo "==> installing $(describe "$extra") into $venv"
done
log="$venv/pip-install.log"
echo "    a few minutes the first time; pip's log: $log"
# torch/torchvision come from the machine's local mirror (pip reads its config); see README.
command=("$python" -m pip install --disable-pip-version-check --progress-bar off -e "$here[$list]")
echo "${command[*]}" >"$log"
"${command[@]}" >>"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT # Ctrl-C stops pip too (a background job ignores SIGINT)
start=$SECONDS
next=30
while kill -0 "$pid" 2>/dev/null; do
  sleep 1
  if [ $((SECONDS - start)) -ge "$next" ]; then
    echo "    still installing ($next s)"
    next=$((next + 30))
  fi
done
rc=0
wait "$pid" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "error: pip failed (exit $rc); the end of $log:" >&2
  tail -n 25 "$log" >&2
  exit "$rc"
fi
for extra in "${missing[@]}"; do
  echo "$want" >"$venv/.vas-installed-$extra"
done
echo "==> installed [$list] in $((SECONDS - start)) s"
