#!/usr/bin/env bash
# Builds the Debian package (a Release build without sanitizers or tests, prefix /usr, the CUDA
# runtime and cuBLAS shipped privately) and checks it before anyone installs it: the man pages
# cover every subcommand and option the binaries list, the payload holds what an installed system
# needs, desktop-file-validate, appstreamcli validate and lintian (no errors) pass.
# Prints the .deb's path on the last line. scripts/test-package.sh installs it in a clean chroot.
#
# Environment: DSV2_PKG_BUILD_DIR (default build/package), DSV2_PKG_SOURCE_DIR (default: this
# checkout), DSV2_JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${DSV2_PKG_BUILD_DIR:-build/package}
SOURCE_DIR=${DSV2_PKG_SOURCE_DIR:-.}
JOBS=${DSV2_JOBS:-$(nproc)}

fail() { echo "package-deb: $*" >&2; exit 1; }
now() { date +%s; }

./scripts/install-deps.sh
t0=$(now)
# Debian's hardening flags (dpkg-buildflags with hardening=+all), as every Debian package has them;
# Release adds -O3. nvcc's host code keeps CMake's defaults.
cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV2_TESTS=OFF \
      -DDSV2_SANITIZE=OFF -DDSV2_UI=ON -DCMAKE_INSTALL_PREFIX=/usr -DDSV2_BUNDLE_CUDA=ON \
      -DCMAKE_CXX_FLAGS="-D_FORTIFY_SOURCE=2 -fstack-protector-strong -Wformat -Werror=format-security" \
      -DCMAKE_EXE_LINKER_FLAGS="-Wl,-z,relro -Wl,-z,now"
cmake --build "$BUILD_DIR" -j "$JOBS"
t1=$(now)

# ---- man pages against the binaries' own --help ----------------------------------------------
# A subcommand or option added to the code without a word in the man page fails here, by name.
man_dir=$SOURCE_DIR/packaging/man
missing=()
# CLI11 lists subcommands as "  name   description" under "Subcommands:".
subs=$("$BUILD_DIR/app/dsv2" --help | sed -n '/^Subcommands:/,$p' | awk 'NR>1 && /^  [a-z]/ {print $1}')
opts=$(QT_QPA_PLATFORM=offscreen "$BUILD_DIR/app/dsv2-chat" --help 2>/dev/null |
       grep -oE '^  (-[A-Za-z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+' || true)
# A changed --help layout must not turn this check into one that passes on nothing.
[ "$(wc -w <<<"$subs")" -ge 5 ] || fail "could not read the subcommands from 'dsv2 --help' (got: $subs)"
[ "$(wc -w <<<"$opts")" -ge 5 ] || fail "could not read the options from 'dsv2-chat --help' (got: $opts)"
for sub in $subs; do
  esc=${sub//-/\\-}  # roff writes a hyphen as \-
  grep -qF -e ".B $esc " "$man_dir/dsv2.1" || grep -qxF ".B $esc" "$man_dir/dsv2.1" ||
    missing+=("dsv2.1: subcommand '$sub'")
done
# Qt's parser lists options as "  -V, --version  ..." or "  --model <dir>  ...".
for opt in $opts; do
  grep -qF -- "${opt//-/\\-}" "$man_dir/dsv2-chat.1" || missing+=("dsv2-chat.1: option '$opt'")
done
if [ ${#missing[@]} -gt 0 ]; then
  printf 'package-deb: the man page lacks %s\n' "${missing[@]}" >&2
  fail "document them in packaging/man/ (the binaries' --help lists them)"
fi

# ---- the package --------------------------------------------------------------------------------
rm -f "$BUILD_DIR"/dsv2-chat_*.deb
(cd "$BUILD_DIR" && cpack -G DEB)
t2=$(now)
deb=$(ls "$BUILD_DIR"/dsv2-chat_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "cpack made no dsv2-chat_*.deb in $BUILD_DIR"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/dsv2 ./usr/bin/dsv2-chat \
            ./usr/share/dsv2-chat/demo-model/config.json ./usr/share/dsv2-chat/demo-model/model.safetensors \
            ./usr/share/applications/dsv2-chat.desktop ./usr/share/metainfo/org.dsv2chat.dsv2chat.metainfo.xml \
            ./usr/share/icons/hicolor/scalable/apps/dsv2-chat.svg ./usr/share/icons/hicolor/48x48/apps/dsv2-chat.png \
            ./usr/share/man/man1/dsv2.1.gz ./usr/share/man/man1/dsv2-chat.1.gz \
            ./usr/share/doc/dsv2-chat/copyright ./usr/share/doc/dsv2-chat/changelog.gz; do
  grep -qxF -- "$path" <<<"$contents" || fail "$deb lacks $path"
done
if "$BUILD_DIR/app/dsv2" --version | grep -q "CUDA support: compiled in"; then
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    grep -qE "^\./usr/lib/[^/]+/dsv2-chat/$lib$" <<<"$contents" || fail "$deb lacks the private $lib"
  done
fi

# ---- validators ---------------------------------------------------------------------------------
extract=$(mktemp -d)
trap 'rm -rf "$extract"' EXIT
dpkg-deb -x "$deb" "$extract"
desktop-file-validate "$extract/usr/share/applications/dsv2-chat.desktop"
appstreamcli validate --no-net "$extract/usr/share/metainfo/org.dsv2chat.dsv2chat.metainfo.xml"
# Errors fail the build; the warnings we accept are listed, with reasons, in docs/packaging.md.
lintian --fail-on error --tag-display-limit 0 "$deb"
t3=$(now)

echo "package-deb: Depends: $(dpkg-deb -f "$deb" Depends)"
echo "package-deb: $(du -m "$deb" | cut -f1) MB (installed $(dpkg-deb -f "$deb" Installed-Size) KiB);" \
     "build $((t1 - t0)) s, cpack $((t2 - t1)) s, checks $((t3 - t2)) s"
echo "$deb"
