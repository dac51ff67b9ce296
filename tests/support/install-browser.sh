#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the console's browser test when they are missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
packages=(chromium chromium-driver)
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null; then
  apt=(sudo apt-get)
else
  echo "The browser test needs Debian's chromium and chromium-driver: apt-get install ${packages[*]} (as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >/dev/null ||
  { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q --no-install-recommends "${packages[@]}" >/dev/null; }
