#!/usr/bin/env bash
# One block of GPU time for the piano model (issue 15), in one device call of under
# 10 minutes: render the piano set on the GPU machine's CPUs, resume the run from its
# packed state in the repository (or start it), train for $MINUTES, pack the state and
# export the EMA model into $OUT. Here, afterwards:
#     rm -rf assets/runs/piano && cp -r OUT/piano-state assets/runs/piano   # the run lives in the repo
#
# Carry (docs/gpu-runs.md): .whl (soundfile, cffi, pycparser, soxr, tensorboardX,
# platformdirs, tinysoundfont for Python 3.12), carry/piano-midi.tar.xz (the exported
# scores: `harmonic data midi`, then tar) and carry/soundfonts-train (the training pianos:
# `harmonic data soundfonts`, without the hold-out piano).
set -euo pipefail

MINUTES=${MINUTES:-5.5}    # training wall time, compile included (the call's limit is 10 min)
HOURS=${HOURS:-10}         # score time of the corpus to render (about 25 s an hour on 16 cores)
RUN=${RUN:-runs/piano}
STATE=${STATE:-assets/runs/piano}
OUT=${OUT:-/tmp/out}
PRESET=${PRESET:-realtime} BATCH=${BATCH:-32} SEQ=${SEQ:-64000}   # a CPU dry run: PRESET=tiny BATCH=2 SEQ=8000
PYTHON=${PYTHON:-python3}

if [[ ${SETUP:-1} == 1 ]]; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
  $PYTHON -m pip install -q --no-deps --no-build-isolation --no-index -e .   # registers `harmonic`'s commands
fi
harmonic() { $PYTHON -c "import sys; from engine.cli import main; sys.exit(main())" "$@"; }

mkdir -p data "$OUT"
tar xJf carry/piano-midi.tar.xz -C data
harmonic data build piano --out data/piano --midi data/piano-midi --soundfonts carry/soundfonts-train \
  --max-hours "$HOURS" --workers "$(nproc)" 2> >(tr "\r" "\n" | awk "NR % 100 == 1" >&2)

RESUME=()
if [[ -f $STATE/meta.json ]]; then
  harmonic run-state unpack "$STATE" --run "$RUN"
  RESUME=(--resume)
fi
# Constant learning rate after warm-up: the run is extended block after block.
harmonic train --data data/piano --run "$RUN" "${RESUME[@]}" --preset "$PRESET" --batch-size "$BATCH" --seq-len "$SEQ" \
  --lr 2e-3 --warmup-steps 500 --schedule constant --steps 1000000 --eval-every 1000 --eval-clips 128 \
  --eval-batch-size 32 --save-every 500 --keep-checkpoints 2 --log-every 50 --max-minutes "$MINUTES" --no-progress
harmonic run-state pack "$RUN" --out "$OUT/piano-state"
harmonic export "$RUN" --out /tmp/piano-model --name "piano (realtime)" --no-test
tar czf "$OUT/piano-model.tgz" -C /tmp piano-model
$PYTHON -c "import json; m = json.load(open('data/piano/manifest.json')); print(json.dumps({k: m[k] for k in ('hours', 'clips', 'works', 'splits')}))"
