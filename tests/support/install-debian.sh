#!/usr/bin/env bash
# Installs Debian packages a test or the bench needs, when their programs are missing:
#   install-debian.sh <program>=<package> ...   (chromium=chromium chromedriver=chromium-driver, wrk=wrk)
set -euo pipefail
packages=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null || packages+=("${pair#*=}")
done
if [ ${#packages[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null; then
  apt=(sudo apt-get)
else
  echo "Needs Debian's ${packages[*]}: apt-get install ${packages[*]} (as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >/dev/null ||
  { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >/dev/null; }
