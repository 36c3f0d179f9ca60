#!/usr/bin/env bash
# One block of GPU time for the piano models (issue 15), in one device call of under
# 10 minutes: render the piano set on the GPU machine's CPUs (once per machine; $BENCH
# meanwhile times a training_throughput suite on the idle GPUs), then train every run in
# $RUNS side by side, each data-parallel over its own GPUs, for $MINUTES. A run resumes from
# its folder on a warm machine, else from its packed state in the repository
# (assets/runs/NAME), else from the weights of its MODEL (the shipped checkpoint it
# improves, or a run's weights in bfloat16, with a fresh optimiser that warms up again: a
# larger model's packed state would not fit the 64 MiB that travels), else it starts. Each
# run's EMA model comes back as $OUT/NAME-model.tgz (in 15 MiB parts when larger), with its
# metrics.csv, and as $OUT/NAME-start.tgz in bfloat16 (the next block's MODEL); its test-split
# NLL is printed (with that of each model in $EVAL), then how readily it leaves silence
# (benchmarks/silence_hazard.py) and what a take of $TAKE_VOICES voices sounds like on the
# run's GPUs at each temperature of $TAKE_TEMPERATURES (`harmonic measure`: pooled in the log, each
# voice in $OUT/NAME-voices-tT.txt);
# the runs named in $PACK come back as packed state too. Here, afterwards (docs/gpu-runs.md):
#     cat OUT/piano-2x-model.tgz.* | tar xz   # then evaluate, and replace the MODEL with it
#     rm -rf assets/runs/piano && cp -r OUT/piano-state assets/runs/piano   # a packed run
#
# Carry (docs/gpu-runs.md): .whl (soundfile, cffi, pycparser, soxr, tensorboardX,
# platformdirs, tinysoundfont, beartype for Python 3.12) and carry/soundfonts-train (the
# training pianos: `harmonic data soundfonts`, without the hold-out piano). The scores travel
# in the repository: assets/scores/piano-midi.tar.xz (`harmonic data midi`, then tar).
set -euo pipefail

MINUTES=${MINUTES:-5.5}    # training wall time, compile included (the call's limit is 10 min)
HOURS=${HOURS:-14}         # score time of the corpus to render (14 h: 2 min on 64 cores)
RENDER_SECONDS=${RENDER_SECONDS:-300}   # the render's bound (a 24 h render with BENCH took longer)
LR=${LR:-1e-3}             # after warm-up, constant: 2e-3 at 128 clips a step spiked (docs/gpu-runs.md)
STEPS=${STEPS:-1000000}    # a run stops at this step (or after MINUTES): runs compared at equal steps
# NAME:PRESET[:MODEL[:GPUS[:MATMUL[:GAP[:ROOM[:FLAGS[:BREAKS]]]]]]] ...: GPUS a comma list (default: run
# i on GPU i), MATMUL default or bf16 (harmonic train --matmul), GAP the data set's silence
# between works and ROOM its share of works in a synthetic room (harmonic data build piano
# --gap-seconds, --room-share; 0.5 and 0.5 by default, in data/piano, the set every model's
# test NLL is measured on; others build data/piano-gapGAP-roomROOM as well), FLAGS more
# `harmonic train` flags joined by + (--input-noise=0.05+--input-noise-reach=2; a comma belongs
# to a flag's value: --set=widths=64,96,144,192,256), BREAKS the data set's pauses inside works
# (--breaks-seconds; 0 by default; others build data/piano-gapGAP-roomROOM-breaksBREAKS).
RUNS=${RUNS:-piano-2x:realtime-2x:assets/checkpoints/piano-realtime-2x}
PACK=${PACK:-}             # runs whose packed state comes back (a realtime state is 24 MiB)
EVAL=${EVAL:-}             # models measured as the runs are, after them (the one a run continues)
BENCH=${BENCH:-}           # a benchmarks.training_throughput suite timed while the CPUs render
OUT=${OUT:-/tmp/out}
BATCH=${BATCH:-32} SEQ=${SEQ:-64000}   # clips per GPU; a CPU dry run: RUNS=piano:tiny BATCH=2 SEQ=8000 EVAL_BATCH=4
EVAL_BATCH=${EVAL_BATCH:-32}           # clips of 8 s per validation and test batch
TAKE_SECONDS=${TAKE_SECONDS:-15} TAKE_VOICES=${TAKE_VOICES:-64}   # the take measured after each block (0: none)
TAKE_TEMPERATURES=${TAKE_TEMPERATURES:-1}   # one take at each of these sampling temperatures
MEASURE=${MEASURE:-1}   # 0: bring each run's model back without its test NLL, hazard and takes (a call's minutes)
PYTHON=${PYTHON:-python3}

if [[ ${SETUP:-1} == 1 ]]; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
  $PYTHON -m pip install -q --no-deps --no-build-isolation --no-index -e .   # registers `harmonic`'s commands
fi
HARMONIC=("$PYTHON" -c "import sys; from engine.cli import main; sys.exit(main())")
harmonic() { "${HARMONIC[@]}" "$@"; }

mkdir -p data "$OUT"
if [[ -n $BENCH ]]; then
  $PYTHON -m benchmarks.training_throughput --suite "$BENCH" --gpus "$(nvidia-smi -L | wc -l)" 2>&1 \
    | grep --line-buffered -v "slow_operation\|Very slow compile" | sed -u "s/^/[bench] /" &
  bench=$!
fi
data_dir() {  # GAP ROOM BREAKS: the data set of that gap, room share and pauses
  local gap=${1:-0.5} room=${2:-0.5} breaks=${3:-0}
  if [[ $gap == 0.5 && $room == 0.5 && $breaks == 0 ]]; then
    echo data/piano
  elif [[ $breaks == 0 ]]; then
    echo "data/piano-gap$gap-room$room"
  else
    echo "data/piano-gap$gap-room$room-breaks$breaks"
  fi
}

render() {  # GAP ROOM BREAKS: renders its data set unless this machine has it
  local out
  out=$(data_dir "${1:-}" "${2:-}" "${3:-}")
  [[ -f $out/manifest.json ]] && return
  [[ -d data/piano-midi ]] || tar xJf assets/scores/piano-midi.tar.xz -C data
  echo "$(date +%T) rendering $HOURS h of scores into $out"
  # One render serves every gap: a second set only joins the works kept in data/piano-renders
  # (and renders those that another room share plays differently).
  timeout "$RENDER_SECONDS" "${HARMONIC[@]}" data build piano --out "$out" --midi data/piano-midi \
    --soundfonts carry/soundfonts-train --max-hours "$HOURS" --gap-seconds "${1:-0.5}" --room-share "${2:-0.5}" \
    --breaks-seconds "${3:-0}" \
    --workers "$(nproc)" \
    --render-cache data/piano-renders \
    2> >(stdbuf -o0 tr "\r" "\n" | awk "NR % 100 == 1 { print; fflush() }" >&2)
  echo "$(date +%T) rendered"
}

if [[ $MEASURE == 1 || -n $EVAL ]]; then
  render 0.5   # data/piano: its test split is where every model is measured
fi
for spec in $RUNS; do
  IFS=: read -r _ _ _ _ _ gap room _ breaks <<<"$spec"
  render "$gap" "$room" "$breaks"
done

test_nll() {  # MODEL GPUS: the model's NLL on the test split of data/piano
  CUDA_VISIBLE_DEVICES=$2 harmonic eval --checkpoint "$1" --data data/piano --split test --batch-size "$EVAL_BATCH" 2>&1 \
    | grep --line-buffered "bits" | sed -u "s|^|[test $1] |"
}

measure_model() {  # NAME MODEL GPUS: how readily the model leaves silence, and what its takes sound like
  local name=$1 model=$2 temperature take
  CUDA_VISIBLE_DEVICES=$3 $PYTHON -m benchmarks.silence_hazard "$model" --data data/piano --clips 6 --no-doc 2>&1 \
    | grep --line-buffered "^| $(basename "$model")" | sed -u "s/^/[$name hazard] /"
  [[ $TAKE_SECONDS == 0 ]] && return
  for temperature in $TAKE_TEMPERATURES; do
    take=/tmp/$name-take-t$temperature.wav
    CUDA_VISIBLE_DEVICES=$3 HARMONIC_STEP_BACKEND=jax harmonic generate --checkpoint "$model" --seconds "$TAKE_SECONDS" \
      --voices "$TAKE_VOICES" --temperature "$temperature" --chunk-ms 250 --seed 5 --out "$take" 2>&1 | tr "\r" "\n" \
      | grep -v "^generating" | tail -4 | sed -u "s/^/[$name take t$temperature] /"
    harmonic measure "$take" --pooled | sed -u "s/^/[$name take t$temperature] /"
    harmonic measure "$take" --start 5 --pooled | sed -u "s/^/[$name take t$temperature from 5 s] /"
    harmonic measure "$take" >"$OUT/$name-voices-t$temperature.txt"
  done
}

train_run() {  # NAME PRESET MODEL GPUS MATMUL GAP ROOM FLAGS BREAKS: resume or start one run, then bring its results back
  local name=$1 preset=$2 model=$3 gpus=$4 matmul=${5:-default} data resume=() flags=()
  data=$(data_dir "$6" "$7" "$9")
  [[ -n $8 ]] && IFS=+ read -r -a flags <<<"$8"
  local batch=$((BATCH * $(tr , "\n" <<<"$gpus" | wc -l)))
  if [[ -f runs/$name/config.json ]]; then   # a warm machine's own run
    resume=(--resume)
  elif [[ -f assets/runs/$name/meta.json ]]; then   # a packed run state (weights and optimiser)
    harmonic run-state unpack "assets/runs/$name" --run "runs/$name"
    resume=(--resume)
  elif [[ -n $model ]]; then   # only the weights
    resume=(--init-from "$model")
  fi
  # Constant learning rate after warm-up: the run is extended block after block.
  CUDA_VISIBLE_DEVICES=$gpus harmonic train --data "$data" --run "runs/$name" "${resume[@]}" --preset "$preset" \
    --matmul "$matmul" --batch-size "$batch" --seq-len "$SEQ" --lr "$LR" --warmup-steps 500 --schedule constant --steps "$STEPS" \
    --eval-every 1000 --eval-clips 128 --eval-batch-size "$EVAL_BATCH" --save-every 500 --keep-checkpoints 2 --log-every 50 \
    --max-minutes "$MINUTES" --no-progress "${flags[@]}" 2>&1 | sed -u "s/^/[$name] /"
  if [[ " $PACK " == *" $name "* ]]; then
    harmonic run-state pack "runs/$name" --out "$OUT/$name-state"
  fi
  rm -rf "/tmp/$name-model"
  CUDA_VISIBLE_DEVICES=$gpus harmonic export "runs/$name" --out "/tmp/$name-model" --name "$name ($preset)" --no-test
  cp "runs/$name/metrics.csv" "/tmp/$name-model/"
  tar czf "/tmp/$name-model.tgz" -C /tmp "$name-model"
  if [[ $(stat -c %s "/tmp/$name-model.tgz") -gt 15728640 ]]; then
    split -b 15M -d "/tmp/$name-model.tgz" "$OUT/$name-model.tgz."   # cat the parts back together here
  else
    cp "/tmp/$name-model.tgz" "$OUT/"
  fi
  rm -rf "/tmp/$name-start"
  CUDA_VISIBLE_DEVICES=$gpus harmonic export "runs/$name" --out "/tmp/$name-start" --no-test --bfloat16 >/dev/null
  tar czf "$OUT/$name-start.tgz" -C /tmp "$name-start"
  [[ $MEASURE == 0 ]] && return   # the model is out already
  test_nll "/tmp/$name-model" "$gpus" || echo "[$name] no test NLL"
  measure_model "$name" "/tmp/$name-model" "$gpus" || echo "[$name] not measured"
}

if [[ -n $BENCH ]]; then
  wait "$bench"
  cp docs/benchmarks.md "$OUT/"   # with the suite's section rewritten
fi
index=0
for spec in $RUNS; do
  IFS=: read -r name preset model gpus matmul gap room flags breaks <<<"$spec"
  train_run "$name" "$preset" "$model" "${gpus:-$index}" "$matmul" "$gap" "$room" "$flags" "$breaks" &
  index=$((index + 1))
done
wait
for model in $EVAL; do   # after the runs: a machine of one GPU has no other for it
  test_nll "$model" 0 || echo "no test NLL for $model"
  measure_model "$(basename "$model")" "$model" 0 || echo "$model not measured"
done
for manifest in data/piano*/manifest.json; do
  $PYTHON -c "import json, sys; m = json.load(open(sys.argv[1])); print(sys.argv[1], json.dumps({k: m[k] for k in ('hours', 'clips', 'works', 'splits')}))" "$manifest"
done
