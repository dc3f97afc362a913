#!/usr/bin/env bash
# Installs the dsv2-chat .deb into a clean Debian 12 (a debootstrap'd minbase folder, entered with
# chroot: no containers) with apt, so its Depends are resolved from the Debian mirror exactly as on a
# user's machine, then checks the installed programs there:
#   dsv2 --version, dsv2 inspect-model on the installed demo model, a short generation on it,
#   dsv2-chat --version offscreen, the window started offscreen on the installed demo model,
#   and a purge that leaves nothing behind.
#
# Usage: scripts/test-package.sh [path/to/dsv2-chat_*.deb]   (default: the newest in build/package,
# or in $DSV2_PKG_BUILD_DIR as for scripts/package-deb.sh)
# Environment: DSV2_CI_CACHE (default /var/cache/dsv2-ci) keeps a tarball of the fresh minbase
# system and apt's downloaded .debs between runs; without it everything is fetched again.
# DSV2_DEBIAN_MIRROR (default http://deb.debian.org/debian). DSV2_CHROOT_PARENT (default /var/tmp)
# is where the throwaway system goes; it needs the package's installed size plus ~1 GiB free.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-package: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot, mount)"

deb=${1:-$(ls -t "${DSV2_PKG_BUILD_DIR:-build/package}"/dsv2-chat_*.deb 2>/dev/null | head -n 1 || true)}
[ -n "$deb" ] && [ -f "$deb" ] || fail "no .deb given and none in build/package (run scripts/package-deb.sh)"
deb=$(realpath "$deb")
mirror=${DSV2_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${DSV2_CI_CACHE:-/var/cache/dsv2-ci}
rootfs_tar=$cache/bookworm-minbase.tar
mkdir -p "$cache/apt-archives/partial"
command -v debootstrap >/dev/null || fail "debootstrap is missing (scripts/install-deps.sh installs it)"

# Room for the throwaway system: the package as installed, its Depends (Qt, ~250 MiB installed), the
# minbase system (~200 MiB) and apt's lists, with a margin. Checked first, so a full disk is named as
# such instead of surfacing as a dpkg write error halfway through the install.
chroot_parent=${DSV2_CHROOT_PARENT:-/var/tmp}
need_mib=$(($(dpkg-deb -f "$deb" Installed-Size) / 1024 + 1024))
free_mib=$(df -Pm "$chroot_parent" | awk 'NR == 2 { print $4 }')
[ "$free_mib" -ge "$need_mib" ] ||
  fail "$chroot_parent has $free_mib MiB free; the clean install needs about $need_mib MiB (free some space, or set DSV2_CHROOT_PARENT to a folder on a larger disk)"
echo "test-package: $free_mib MiB free in $chroot_parent, about $need_mib MiB needed"

work=$(mktemp -d "$chroot_parent/dsv2-chroot.XXXXXX")
root=$work/root
mounts=()
cleanup() {
  local m still=0
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[i]}
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    if mountpoint -q "$m"; then echo "test-package: could not unmount $m" >&2; still=1; fi
  done
  # Never delete through a mount that is still there (it would reach the host's /proc or the cache).
  if [ "$still" -eq 0 ]; then rm -rf --one-file-system "$work"; else echo "test-package: left $work" >&2; fi
}
trap cleanup EXIT
mount_in() {  # mount_in <mount args...> <target>: mounts and remembers it for cleanup
  local target=${*: -1}
  mkdir -p "$target"
  mount "$@"
  mounts+=("$target")
}

t0=$(date +%s)
# ---- a fresh minbase Debian 12, from the cache when there is one -------------------------------
mkdir -p "$root"
if [ -s "$rootfs_tar" ]; then
  tar -xf "$rootfs_tar" -C "$root"
  echo "test-package: Debian 12 minbase from $rootfs_tar"
else
  echo "test-package: debootstrap bookworm minbase from $mirror (cached afterwards in $rootfs_tar)"
  debootstrap --variant=minbase --cache-dir="$cache/apt-archives" bookworm "$root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  tar -cf "$rootfs_tar.tmp" -C "$root" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
fi
security=${mirror%/debian}/debian-security
[ "$security" != "$mirror" ] || security=http://deb.debian.org/debian-security
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount_in -t proc proc "$root/proc"
# apt's downloads survive the throwaway root: the next run fetches only what changed.
mount_in --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
# The package's folder is bound in read-only rather than copied: a copy would cost its 400+ MiB again.
mount_in --bind -o ro "$(dirname "$deb")" "$root/mnt/dsv2-package"
t1=$(date +%s)

in_root() {  # a clean environment: nothing of the host's (no DISPLAY, no XDG dirs, no CUDA paths)
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# ---- install with apt: Depends come from the Debian mirror ---------------------------------------
in_root apt-get update -q > "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; fail "apt-get update failed"; }
in_root apt-get install -y -q --no-install-recommends "/mnt/dsv2-package/$(basename "$deb")" >> "$work/apt.log" 2>&1 ||
  { tail -n 40 "$work/apt.log" >&2; fail "apt-get install of $(basename "$deb") failed"; }
echo "test-package: installed $(basename "$deb") and $(grep -c '^Setting up' "$work/apt.log") packages"
# docs/packaging.md says the Qt SQLite plugin is not needed (storage uses SQLite's C API); the window
# test below runs without it, so it must not have come in through another package either.
! in_root dpkg-query -W -f='${Status}' libqt6sql6-sqlite 2>/dev/null | grep -q "ok installed" ||
  fail "libqt6sql6-sqlite got installed: the window test would not show whether dsv2-chat needs it"
t2=$(date +%s)

# ---- the installed programs ---------------------------------------------------------------------
check() {  # check <name> <regex the output must match> <command...>
  local name=$1 want=$2 out
  shift 2
  if ! out=$(in_root "$@" 2>&1); then
    echo "$out" >&2
    fail "$name: exited with an error"
  fi
  grep -qE -- "$want" <<<"$out" || { echo "$out" >&2; fail "$name: output lacks /$want/"; }
  echo "test-package: ok: $name"
  printf '%s\n' "$out" | sed 's/^/    /' | head -n 6
}
demo=/usr/share/dsv2-chat/demo-model
version=$(dpkg-deb -f "$deb" Version)

missing_libs=$(in_root sh -c 'ldd /usr/bin/dsv2 /usr/bin/dsv2-chat | grep "not found" || true')
[ -z "$missing_libs" ] || fail "unresolved libraries in the clean system: $missing_libs"
check "dsv2 --version" "^dsv2 $version .*CUDA support: " sh -c 'dsv2 --version | tr "\n" " "'
check "dsv2 inspect-model (installed demo model)" "problems +none" dsv2 inspect-model "$demo"
check "dsv2 generate on the demo model (CPU)" "[[:alpha:]]" \
  dsv2 generate --model "$demo" --backend cpu --chat --prompt "Tell me a fortune." -n 12 --seed 1
check "dsv2-chat --version (offscreen)" "^dsv2-chat $version" env QT_QPA_PLATFORM=offscreen dsv2-chat --version
# The window itself, offscreen, with no --model: it must find the demo model under /usr/share.
# Its log (in $XDG_STATE_HOME, as the README says) names the folder and the load.
check "dsv2-chat starts on the installed demo model (offscreen)" \
  "model $demo \\(demo model\\).* loaded on .*dsv2-chat exiting \\(0\\)" sh -c \
  "QT_QPA_PLATFORM=offscreen dsv2-chat --quit-after 8000 >/dev/null 2>&1; tr '\\n' ' ' < /root/.local/state/dsv2-chat/log/dsv2-chat.log"

# ---- removal leaves nothing of ours behind ------------------------------------------------------
in_root apt-get purge -y -q dsv2-chat >> "$work/apt.log" 2>&1 || fail "apt-get purge dsv2-chat failed"
for path in /usr/bin/dsv2 /usr/bin/dsv2-chat /usr/share/dsv2-chat /usr/lib/x86_64-linux-gnu/dsv2-chat; do
  [ ! -e "$root$path" ] || fail "$path is still there after purge"
done
echo "test-package: ok: purge removes every installed file"
t3=$(date +%s)
echo "test-package: passed; chroot $((t1 - t0)) s, apt install $((t2 - t1)) s, checks $((t3 - t2)) s"
