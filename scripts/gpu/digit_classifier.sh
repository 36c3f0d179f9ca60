#!/usr/bin/env bash
# The digit classifier's augmentation study (issue 15) on one H200, in one device call of
# under 10 minutes: several `harmonic classifier` runs at once on the GPU, one process each.
#
# Sets, built on the 2-core machine (docs/results.md, "Digit classifier"):
#     harmonic data build digits --out data/digits
#     harmonic data build digits --synthesizers espeak --out data/digits-espeak
#     harmonic data build digits --synthesizers flite --takes 10 --out data/digits-flite
# The espeak-only set is data/digits without the flite voices' clips, which come last in each
# split (same seed, same draws): the first 6,490 train / 860 valid / 810 test clips of
# data/digits are byte for byte data/digits-espeak (checked there), so only its manifest travels.
#
# What travels: the tracked tree is ~42 MiB of the 64 MiB a call may carry, and data/digits's
# arrays (np.savez, then xz -6: 38 MiB, as carry/digits-xz in docs/gpu-runs.md) do not fit beside
# it, so a first call leaves their first part in the ignored data/parts/ of the warm machine
# and this call, carrying the rest, joins them:
#     split -b 22500000 carry/digits-xz/arrays.npz.xz carry/xz-part.
#     mv carry/xz-part.aa carry/digits-a/; mv carry/xz-part.ab carry/digits-b/; cp data/digits/manifest.json carry/digits-b/
#     call 1, carrying carry/digits-a: mkdir -p data/parts && cp carry/digits-a/xz-part.aa data/parts/
#     call 2, carrying .whl carry/digits-b carry/digits-flite (manifest.json + arrays.npz) and
#     carry/digits-espeak (manifest.json), on the still warm machine: bash scripts/gpu/digit_classifier.sh
# It returns $OUT/classifiers.tgz (every trained classifier, its card holding its accuracies) and
# $OUT/runs.log.
set -uo pipefail

STEPS=${STEPS:-3000}
OUT=${OUT:?set by the device machine: the folder whose files come back}
BUDGET_S=${BUDGET_S:-560}

log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
exec > >(tee "$OUT/runs.log") 2>&1

log "installing the wheels the image lacks and the project"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1

log "unpacking the sets"
cat data/parts/xz-part.aa carry/digits-b/xz-part.ab | xz -d -T0 > /tmp/arrays.npz || exit 1
python3 - <<'EOF' || exit 1
import json, shutil
from pathlib import Path
import numpy as np

def unpack(manifest: Path, arrays, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest, out / "manifest.json")
    for name, array in arrays.items():
        np.save(out / f"{name}.npy", array)

digits = dict(np.load("/tmp/arrays.npz"))
unpack(Path("carry/digits-b/manifest.json"), digits, Path("data/digits"))
unpack(Path("carry/digits-flite/manifest.json"), dict(np.load("carry/digits-flite/arrays.npz")), Path("data/digits-flite"))
espeak = Path("carry/digits-espeak/manifest.json")
sizes = {split: sizes["clips"] for split, sizes in json.loads(espeak.read_text())["splits"].items()}
unpack(espeak, {name: array[: sizes[name.split("_")[0]]] for name, array in digits.items()}, Path("data/digits-espeak"))
EOF

# Each run: name, data, then `harmonic classifier` flags. OLD is the shipped recipe's augmentation,
# as near as AugmentConfig says it (shift, gain down to -10.5 dB, noise ~40 dB under the clip).
OLD="--augment speed_range=0 --augment room_probability=0 --augment time_masks=0 --augment freq_masks=0
 --augment min_gain_db=-10.5 --augment noise_probability=1 --augment min_snr_db=35"
RUNS=(
  "new        data/digits        --also-test data/digits-flite"
  "new-seed1  data/digits        --also-test data/digits-flite --seed 1"
  "new-6000   data/digits        --also-test data/digits-flite --steps 6000"
  "old        data/digits        --also-test data/digits-flite $OLD"
  "nospec     data/digits        --augment time_masks=0 --augment freq_masks=0"
  "nospeed    data/digits        --augment speed_range=0"
  "noroom     data/digits        --augment room_probability=0 --augment noise_probability=0"
  "espeak-new data/digits-espeak --also-test data/digits-flite"
  "espeak-old data/digits-espeak --also-test data/digits-flite $OLD"
)
mkdir -p runs/classifiers
export XLA_PYTHON_CLIENT_PREALLOCATE=false XLA_PYTHON_CLIENT_MEM_FRACTION=0.1 PYTHONUNBUFFERED=1
LIMIT=$(( BUDGET_S - SECONDS - 20 ))
log "training ${#RUNS[@]} classifiers at once (at most ${LIMIT} s)"
PIDS=()
for run in "${RUNS[@]}"; do
  read -r name data flags <<< "$run"
  # shellcheck disable=SC2086
  timeout "$LIMIT" harmonic classifier --data "$data" --out "runs/classifiers/$name" --steps "$STEPS" $flags \
    > "runs/classifiers/$name.log" 2>&1 &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done
for run in "${RUNS[@]}"; do
  read -r name _ <<< "$run"
  log "$name: $(grep -v '^classifier step' "runs/classifiers/$name.log" | tail -3 | tr '\n' ' ')"
done
tar czf "$OUT/classifiers.tgz" -C runs classifiers
log "done"
