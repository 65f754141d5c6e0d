#!/usr/bin/env bash
# Issue 4's GPU check as one prepared script: the whole `full` preset (3 `bn` + 3 `deep` members, 15 epochs, TTA)
# timed on one GPU, for the 2×T4 sizing in the README. It is meant for a machine with a GPU and JAX but neither
# TensorFlow nor internet access, as this workplace's lent machines are: Keras travels as wheels, the replica
# as a copy, and the code runs under KERAS_BACKEND=jax. Time there is short (minutes), so everything is
# prepared here and the run is one command.
#
#   scripts/gpu_checks.sh prepare          # here: .whl/ (keras, namex, optree), .data/ (the replica)
#   scripts/gpu_checks.sh run OUT [ARGS]   # there: log, results row and summary under OUT; ARGS go to
#                                          # `benchmark.py recipe` (e.g. --members 2 for a shorter check)
#
# The H100 lent once trained a 15-epoch member in about a minute, so the preset should take 6-8 minutes: give
# the command 540 s or more. Its figures go to benchmarks/README.md ("On a lent GPU") with the device's name,
# and its row (OUT/results.jsonl) to the end of benchmarks/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    keras_version=$(python3 -c "import keras; print(keras.__version__)")
    rm -rf .whl && mkdir -p .whl .data
    # keras and namex are pure Python; optree is built for those machines' Python 3.12; the rest of Keras's
    # needs (numpy, h5py, ml-dtypes, rich, absl-py) are installed there
    python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "keras==$keras_version" namex
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl optree
    cp ../shared/digit-recognizer/{train.csv.gz,test.csv.gz,sample_submission.csv} .data/
    du -sh .whl .data
    ;;
run)
    out=${2:?"run needs an output folder: scripts/gpu_checks.sh run OUT"}
    shift 2
    mkdir -p "$out"
    if ! python3 -c "import keras" 2>/dev/null; then  # where it is installed (here), the run uses that one
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONUNBUFFERED=1 KERAS_BACKEND=${KERAS_BACKEND:-jax}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt" || true
    # the run's own folder holds more files than come back from such a machine: only the summary is copied out
    python3 scripts/benchmark.py recipe --data-dir .data --preset full --out /tmp/gpu-recipe \
        --results "$out/results.jsonl" "$@" 2>&1 | tee "$out/recipe.log"
    cp /tmp/gpu-recipe/summary.json "$out/"
    ;;
*)
    echo "usage: scripts/gpu_checks.sh prepare | run OUT [benchmark.py recipe arguments]" >&2
    exit 2
    ;;
esac
