#!/usr/bin/env bash
# Copies the header-only dependencies the GPU machine lacks into .carry/include (git-ignored), to be
# named in the device tool's `carry` list. Run here (Debian, packages from install-deps.sh) before a
# device run. PCRE2's header travels too; its runtime (libpcre2-8.so.0) is on Ubuntu 24.04 already.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.carry/include
rm -rf .carry
mkdir -p "$dest"
cp -r /usr/include/nlohmann "$dest/"
cp -r /usr/include/CLI "$dest/"
cp -r /usr/include/spdlog "$dest/"
cp -r /usr/include/fmt "$dest/"
cp -r /usr/include/doctest "$dest/"
cp /usr/include/pcre2.h "$dest/"
# Debian's spdlog is configured for an external, compiled fmt; on the device both are used
# header-only (cmake/Dsv2Dependencies.cmake defines SPDLOG_HEADER_ONLY and FMT_HEADER_ONLY there).
du -sh .carry
