#!/usr/bin/env bash
# Installs the Debian 12 packages dsv2-chat needs to build, test and run. Safe to re-run: it only
# calls apt-get when something is missing. Uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  qt6-base-dev qt6-base-dev-tools libqt6sql6-sqlite qt6-svg-dev qt6-charts-dev libqt6opengl6-dev
  qt6-tools-dev qt6-l10n-tools libxkbcommon-dev libgl-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libsqlite3-dev doctest-dev
  libcpp-httplib-dev python3-venv
  xvfb xauth fonts-dejavu-core imagemagick xdotool
  # The Debian package: build it, check it, install it into a chroot (scripts/package-deb.sh, test-package.sh).
  file dpkg-dev librsvg2-bin desktop-file-utils appstream lintian debootstrap
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
