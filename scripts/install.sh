#!/usr/bin/env bash
# One-shot, idempotent setup: apt packages, .venv, pinned torch, card packages, MinkowskiEngine, editable install.
# A second run finds the stamp and returns in seconds. See README "Install" for the variables.
#   TORCH_SPEC       torch requirement (default torch==2.13.0, the CPU wheel of our machines)
#   TORCH_INDEX_URL  extra index for a CUDA build of torch, e.g. https://download.pytorch.org/whl/cu124 (GPU users)
#   WITH_MINKOWSKI   1 (default) builds MinkowskiEngine 0.5.4 for the 3D teacher; 0 skips it
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
WITH_MINKOWSKI=${WITH_MINKOWSKI:-1}
PY=${PYTHON:-python3}

stamp_key=$(cat scripts/install.sh requirements/*.txt pyproject.toml | sha256sum | cut -c1-16)-$TORCH_SPEC-$TORCH_INDEX_URL-$WITH_MINKOWSKI
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_key" ]; then
  exit 0
fi

apt_needed=()
for pkg in libopenblas-dev libusb-1.0-0 libgomp1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_needed+=("$pkg")
done
if [ ${#apt_needed[@]} -gt 0 ]; then
  echo "[install] apt packages: ${apt_needed[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_needed[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
constraints="$VENV/constraints.txt"
printf '%s\n' "$TORCH_SPEC" > "$constraints"
extra=()
[ -n "$TORCH_INDEX_URL" ] && extra=(--extra-index-url "$TORCH_INDEX_URL")

echo "[install] torch ($TORCH_SPEC) and the card packages"
$pip install -q --upgrade pip setuptools wheel -c "$constraints"
$pip install -q "$TORCH_SPEC" -c "$constraints" "${extra[@]}"
$pip install -q -r requirements/base.txt -r requirements/dev.txt -c "$constraints" "${extra[@]}"
$pip install -q --no-deps -e . -c "$constraints"

if [ -z "$TORCH_INDEX_URL" ]; then
  # CPU machine: a stray CUDA wheel means some resolve escaped the constraints (GBs, and a different torch).
  cuda_pkgs=$($pip list --format=freeze | grep -iE '^(nvidia-|triton==|cuda-)' || true)
  if [ -n "$cuda_pkgs" ]; then
    echo "[install] ERROR: CUDA/nvidia packages were installed on a CPU setup:" >&2
    echo "$cuda_pkgs" >&2
    echo "[install] remove $VENV and check that every pip call passes -c $constraints" >&2
    exit 1
  fi
  $VENV/bin/python - <<'PY'
import torch
assert "+cpu" in torch.__version__ or not torch.version.cuda, f"expected a CPU torch build, got {torch.__version__}"
PY
fi

if [ "$WITH_MINKOWSKI" = 1 ] && ! $VENV/bin/python -c "import indoor_parsing.models.minkowski_backend as m; m.import_minkowski()" 2>/dev/null; then
  echo "[install] building MinkowskiEngine 0.5.4 (about 5 minutes on 2 cores)"
  $pip install -q ninja numpy -c "$constraints"
  SETUPTOOLS_USE_DISTUTILS=stdlib MAX_JOBS=${MAX_JOBS:-2} \
    $pip install -q --no-build-isolation --no-deps MinkowskiEngine==0.5.4 -c "$constraints"
fi

echo "$stamp_key" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
echo "[install] done: $($VENV/bin/python -c 'import torch; print("torch", torch.__version__)')"
