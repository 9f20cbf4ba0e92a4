#!/usr/bin/env bash
# The 512x512 table-form deflicker job (W = 15, C = 40) of bench_deflicker's speed part, for two
# commits alternately on this machine, each run in a fresh process:
#   bash benchmarks/compare_deflicker_speed.sh OLD_COMMIT NEW_COMMIT [RUNS]
# Needs the demo extra in the active environment.
set -euo pipefail
old=$1 new=$2 runs=${3:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/old"; git -C "$repo" worktree remove --force "$work/new"; rm -rf "$work"' EXIT
git -C "$repo" worktree add -q "$work/old" "$old"
git -C "$repo" worktree add -q "$work/new" "$new"
clip="$work/clip"
(cd "$work/new/benchmarks" && PYTHONPATH="$work/new" python - "$clip" <<'PY'
import sys
from pathlib import Path
from bench_deflicker import jittered
from clips import make_clip
from restyle import io
clip = Path(sys.argv[1])
frames = list(make_clip("astronaut", 512, 512, n_frames=40 + 2 * 15))
_, processed = jittered("watercolor", frames)
for kind, images in (("processed", processed), ("guide", frames)):
    (clip / kind).mkdir(parents=True)
    for t, image in enumerate(images):
        io.write_image(clip / kind / io.frame_name(t), image)
PY
)
for side in old new; do  # compile each side's kernels before timing
  (cd "$work/$side/benchmarks" && PYTHONPATH="$work/$side" python bench_deflicker.py --speed-case "$clip" table 15 5 >/dev/null 2>&1)
done
for _ in $(seq "$runs"); do
  for side in old new; do
    echo "$side $(cd "$work/$side/benchmarks" && PYTHONPATH="$work/$side" python bench_deflicker.py --speed-case "$clip" table 15 40 | tail -1)"
  done
done
cat /proc/loadavg
