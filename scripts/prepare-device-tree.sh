#!/usr/bin/env bash
# A snapshot of one commit (default HEAD) in .devtree/ (git-ignored), with .carry inside, for the
# GPU machine: the device tool copies the whole working tree, including other engineers'
# half-done edits; running from the snapshot tests exactly the commit. Usage:
#   scripts/prepare-device-tree.sh [commit]     then run with carry [".devtree"] and
#   cd .devtree && DSV2_DEVICE_EXTRA=... bash scripts/device_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
[ -d .carry ] || bash scripts/prepare-device-carry.sh
rm -rf .devtree
mkdir -p .devtree
git archive "$rev" | tar -x -C .devtree
cp -r .carry .devtree/.carry
echo "$(git rev-parse --short "$rev")" >.devtree/.devtree-commit
du -sh .devtree | cut -f1 | xargs echo ".devtree: $(cat .devtree/.devtree-commit),"
