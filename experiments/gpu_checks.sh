#!/usr/bin/env bash
# The GPU checks, prepared here to run there as one command each: members per step, the `gpu` preset's family and
# the budget's forecast (`check`); the whole `full` preset (3 `bn` + 3 `deep` members, 15 epochs, TTA) timed on one
# GPU (`run`); out-of-fold members, the measure that ranks recipes here, trained there (`oof`). It is meant for a
# machine with a GPU and JAX but neither TensorFlow nor internet access, as this workplace's lent machines are:
# Keras travels as wheels, the replica as a copy, and the code runs under KERAS_BACKEND=jax. Time there is short
# (minutes), so everything is prepared here and the run is one command.
#
#   experiments/gpu_checks.sh prepare          # here: .whl/ (keras, namex, optree), .data/ (the replica)
#   experiments/gpu_checks.sh check OUT        # there: experiments/gpu_check.py (members per step, the gpu
#                                          # preset's family, the budget model) in under ten minutes
#   experiments/gpu_checks.sh rehearse OUT     # here, before a lent machine's minutes: `check OUT --quick` in a
#                                          # Python like that machine's (JAX and Keras, no TensorFlow)
#   experiments/gpu_checks.sh run OUT [ARGS]   # there: log, results row and summary under OUT; ARGS go to
#                                          # `benchmark.py recipe` (e.g. --members 2 for a shorter check)
#   experiments/gpu_checks.sh oof OUT JOBS [ARGS]  # there: `benchmark.py oof` with its folds split over JOBS
#                                          # processes on the one GPU; OUT gets oof.log, folds.tar.gz (every
#                                          # fold saved) and, once all are, results.jsonl. FOLDS (default 10)
#                                          # sets --folds; BUDGET (default 500) is each process's seconds
#
# A batch-64 step is bound by per-step overhead, not arithmetic (2-4 ms on the H100 for both families), so
# folds run side by side on the GPU's host cores, each process taking GPU memory as it needs it. Back here:
# `tar -xzf folds.tar.gz -C benchmarks/oof-NAME`, then `benchmark.py oof` with the same ARGS and --out scores
# them (it never trains a saved fold again) and trains any the budget left out.
#
# The H100 lent once trained a 15-epoch member in about a minute, so the preset should take 6-8 minutes: give
# the command 540 s or more. Its figures go to experiments/README.md ("On a lent GPU") with the device's name,
# and its row (OUT/results.jsonl) to the end of benchmarks/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

set_up() {  # keras from the wheels where none is installed (here one is, and the run uses it); the device's name
    mkdir -p "$1"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the package, not installed there
    export PYTHONUNBUFFERED=1 KERAS_BACKEND=${KERAS_BACKEND:-jax}  # before Keras's import, which reads it
    if ! python3 -c "import keras" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site:$PYTHONPATH
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$1/device.txt" || true
}

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
check)
    out=${2:?"check needs an output folder: experiments/gpu_checks.sh check OUT"}
    set_up "$out"
    python3 experiments/gpu_check.py --data-dir .data --out "$out" "${@:3}" 2>&1 | tee "$out/gpu_check.log"
    ;;
rehearse)
    out=${2:?"rehearse needs an output folder: experiments/gpu_checks.sh rehearse OUT"}
    # a fresh environment without TensorFlow, so an import of it anywhere fails here and not there; Keras from
    # .whl. Where this machine has that machine's Python (3.12; REHEARSE_PYTHON names another), its JAX and
    # numpy too, and the carried optree; else the newest JAX for python3 and optree from the registry
    venv=/tmp/gpu-rehearsal python=${REHEARSE_PYTHON:-python3}
    for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
        if [ -z "${REHEARSE_PYTHON:-}" ] && "$candidate" -c pass 2>/dev/null; then python=$candidate; break; fi
    done
    if "$python" -c "import sys; sys.exit(sys.version_info[:2] != (3, 12))"; then
        pins=("jax==0.11.2" "numpy==2.5.2" .whl/optree-*.whl)
    else
        pins=(jax numpy optree)
    fi
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install -q "${pins[@]}" pandas scikit-learn matplotlib h5py ml-dtypes rich absl-py \
        typing-extensions .whl/keras-*.whl .whl/namex-*.whl
    KERAS_BACKEND=jax "$venv/bin/python" -c "import sys, jax, numpy, keras
print('rehearsing with Python', sys.version.split()[0], 'JAX', jax.__version__, 'numpy', numpy.__version__,
      'Keras', keras.__version__)"
    PATH=$venv/bin:$PATH PYTHONPATH= experiments/gpu_checks.sh check "$out" --quick
    ;;
run)
    out=${2:?"run needs an output folder: experiments/gpu_checks.sh run OUT"}
    shift 2
    set_up "$out"
    # the run's own folder holds more files than come back from such a machine: only the summary is copied out
    python3 experiments/benchmark.py recipe --data-dir .data --preset full --out /tmp/gpu-recipe \
        --results "$out/results.jsonl" "$@" 2>&1 | tee "$out/recipe.log"
    cp /tmp/gpu-recipe/summary.json "$out/"
    ;;
oof)
    out=${2:?"oof needs an output folder and a process count: experiments/gpu_checks.sh oof OUT JOBS"}
    jobs=${3:?"oof needs a process count: experiments/gpu_checks.sh oof OUT JOBS"}
    shift 3
    set_up "$out"
    folds=${FOLDS:-10} saved=/tmp/gpu-oof
    # without this each JAX process takes 75% of the GPU's memory at start, and the second cannot start
    export XLA_PYTHON_CLIENT_PREALLOCATE=false
    rm -rf "$saved" && mkdir -p "$saved"
    for ((job = 0; job < jobs; job++)); do
        mine=()
        for ((fold = job + 1; fold <= folds; fold += jobs)); do mine+=(--fold "$fold"); done
        # a process past its budget is stopped: the folds it saved stay saved and still come back. One that ends
        # with every fold saved scores them all and writes the run's row (below)
        timeout "${BUDGET:-500}" python3 experiments/benchmark.py oof --data-dir .data --folds "$folds" --out "$saved" \
            --results "$saved/job-$job.jsonl" "${mine[@]}" "$@" >"$saved/job-$job.log" 2>&1 &
    done
    wait || true
    cat "$saved"/job-*.log >"$out/oof.log"
    if ls "$saved"/job-*.jsonl >/dev/null 2>&1; then  # every fold saved: the last process's row (two may tie)
        tail -qn1 "$saved"/job-*.jsonl | tail -n1 >"$out/results.jsonl"
    fi
    tar -czf "$out/folds.tar.gz" -C "$saved" $(cd "$saved" && ls fold-*.npz job-*.log 2>/dev/null)
    ;;
*)
    echo "usage: experiments/gpu_checks.sh prepare | check OUT | rehearse OUT |" \
        "run OUT [benchmark.py recipe arguments] | oof OUT JOBS [benchmark.py oof arguments]" >&2
    exit 2
    ;;
esac
