#!/usr/bin/env bash
# Installs the system libraries MuJoCo needs for offscreen rendering (EGL; Mesa's llvmpipe on
# machines without a GPU). Does nothing when they are already present.
set -euo pipefail
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
missing=()
have_lib 'libEGL.so.1' || missing+=(libegl1)
have_lib 'libEGL_mesa.so.0' || missing+=(libegl-mesa0)
have_lib 'libGL.so.1' || missing+=(libgl1)
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] \
  || ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || missing+=(libgl1-mesa-dri)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-system-deps: installing ${missing[*]} (offscreen rendering for MuJoCo)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
