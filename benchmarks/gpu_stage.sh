#!/usr/bin/env bash
# Stages benchmarks/gpu_check.sh for the lent GPU machine (the `device` tool), which is sent the
# session's checkout and the ignored folders named in `carry`, at most 64 MiB a call.
#
#   bash benchmarks/gpu_stage.sh CHECKOUT [BUNDLE] [AIRBENCH_GIT_DIR]
#
# CHECKOUT: the checkout the device tool sends (its .git/info/exclude gets /.gpucheck/ and /.gpudata1/).
# Writes, all ignored there, nothing of it committed:
#   CHECKOUT/.gpudata1/cifar10-part1of2.npz    first half of the real CIFAR-10 (WebP, ~53 MB): call 1
#   CHECKOUT/.gpucheck/                        `git archive HEAD` of this branch (code, tests, recipes),
#                                              GIT_COMMIT, data-parts/cifar10-part2of2.npz (~53 MB), and
#                                              peer/airbench94.py: airbench's public legacy/airbench94.py,
#                                              read from AIRBENCH_GIT_DIR (a fetched mirror), unchanged
# Call 1 (carry .gpudata1):  mkdir -p /tmp/gpu_check_parts && cp .gpudata1/*.npz /tmp/gpu_check_parts/
# Call 2 (carry .gpucheck), at once, while the machine is warm:  cd .gpucheck && bash benchmarks/gpu_check.sh
set -euo pipefail
CHECKOUT=$(cd "$1" && pwd)
BUNDLE=${2:-$CHECKOUT/../shared/datasets/cifar10.npz}
PEER_GIT=${3:-/work/.mirror/KellerJordan+cifar10-airbench/repo}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
EXCLUDE="$(git -C "$CHECKOUT" rev-parse --path-format=absolute --git-common-dir)/info/exclude"
for p in /.gpucheck/ /.gpudata1/; do grep -qxF "$p" "$EXCLUDE" || echo "$p" >> "$EXCLUDE"; done
rm -rf "$CHECKOUT/.gpucheck" "$CHECKOUT/.gpudata1"
mkdir -p "$CHECKOUT/.gpucheck/peer" "$CHECKOUT/.gpucheck/data-parts" "$CHECKOUT/.gpudata1"
git -C "$HERE" archive HEAD src tests benchmarks recipes pyproject.toml | tar -x -C "$CHECKOUT/.gpucheck"
git -C "$HERE" rev-parse HEAD > "$CHECKOUT/.gpucheck/GIT_COMMIT"
git --git-dir="$PEER_GIT" show HEAD:legacy/airbench94.py > "$CHECKOUT/.gpucheck/peer/airbench94.py"
echo "peer: legacy/airbench94.py at $(git --git-dir="$PEER_GIT" rev-parse HEAD), sha256 $(sha256sum "$CHECKOUT/.gpucheck/peer/airbench94.py" | cut -d' ' -f1)" \
    | tee "$CHECKOUT/.gpucheck/peer/SOURCE"
TMP=$(mktemp -d)
$PY "$HERE/benchmarks/gpu_data.py" pack "$BUNDLE" "$TMP" --parts 2
mv "$TMP/cifar10-part1of2.npz" "$CHECKOUT/.gpudata1/"
mv "$TMP/cifar10-part2of2.npz" "$CHECKOUT/.gpucheck/data-parts/"
rmdir "$TMP"
du -sh "$CHECKOUT/.gpudata1" "$CHECKOUT/.gpucheck"
echo "the tree that travels besides: $(git -C "$CHECKOUT" ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1) bytes"
