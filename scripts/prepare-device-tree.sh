#!/usr/bin/env bash
# A snapshot of one commit (default HEAD) in .devtree/ (git-ignored), with .carry inside, for the
# GPU machine: the device tool copies the whole working tree, including other engineers'
# half-done edits; running from the snapshot tests exactly the commit. Usage:
#   scripts/prepare-device-tree.sh [commit]     then run with carry [".devtree"] and
#   cd .devtree && DSV2_DEVICE_EXTRA=... bash scripts/device_check.sh
# DSV2_DEVTREE=.devtree-NAME puts the snapshot there instead (one per engineer; any .devtree* is
# git-ignored), e.g. for a snapshot of the working tree's uncommitted state use a commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
dir=${DSV2_DEVTREE:-.devtree}
case "$dir" in .devtree*) ;; *) echo "DSV2_DEVTREE must start with .devtree (git-ignored)" >&2; exit 2 ;; esac
[ -d .carry ] || bash scripts/prepare-device-carry.sh
rm -rf "$dir"
mkdir -p "$dir"
git archive "$rev" | tar -x -C "$dir"
cp -r .carry "$dir/.carry"
echo "$(git rev-parse --short "$rev")" >"$dir/.devtree-commit"
du -sh "$dir" | cut -f1 | xargs echo "$dir: $(cat "$dir/.devtree-commit"),"
