#!/usr/bin/env bash
# The bundle run in a Python with Kaggle's versions (TensorFlow 2.20, Keras 3.13.2, JAX 0.7.2), on the features a
# Kaggle run uses: the fast loop, members side by side with EMA, TTA and pseudo-labels, the tutorial's RMSprop and
# plateau, the `gpu` preset within a budget, worker processes under JAX. Each run is short (a few epochs, often
# --limit); what it checks is that every path runs there and writes a submission, not how well it scores.
#
#   experiments/kaggle_image.sh [VENV]     # VENV (default /tmp/kaggle-image) is made once, from the registry
#
# DATA (default ../shared/digit-recognizer) is the competition folder. Prints a line a run and exits non-zero if
# any failed; logs under $VENV-runs/.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/kaggle-image}
data=${DATA:-../shared/digit-recognizer}
runs=$venv-runs
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || exit 1
    "$venv/bin/pip" install -q "tensorflow==2.20.*" "keras==3.13.2" "jax==0.7.2" "jaxlib==0.7.2" pandas \
        scikit-learn matplotlib mlxtend || exit 1
fi
"$venv/bin/python" -c "import jax, keras, tensorflow as tf; print('tensorflow', tf.__version__, 'keras',
keras.__version__, 'jax', jax.__version__)" 2>/dev/null || exit 1
rm -rf "$runs" && mkdir -p "$runs"
python3 scripts/bundle.py --out "$runs/kernel.py" || exit 1  # its own copy: a push meanwhile rewrites build/
failed=0

run() {  # NAME BACKEND FLAGS...: one run of the bundle; its summary's figures, or its log's last line
    local name=$1 backend=$2 started=$SECONDS
    shift 2
    KERAS_BACKEND=$backend "$venv/bin/python" "$runs/kernel.py" --data-dir "$data" --out "$runs/$name" --no-plots \
        --verbose 0 "$@" > "$runs/$name.log" 2>&1
    local code=$?
    if [ $code -eq 0 ] && [ -s "$runs/$name/submission.csv" ]; then
        "$venv/bin/python" -c "import json, sys; s = json.load(open(sys.argv[1]))
print(f'ok    {sys.argv[2]:<12} hold-out {s[\"ensemble_holdout_accuracy\"]:.5f}, {s[\"members_trained\"]} member(s),' +
      f' {sys.argv[3]} s')" "$runs/$name/summary.json" "$name" $((SECONDS - started))
    else
        echo "FAIL  $name (exit $code): $(tail -n 1 "$runs/$name.log")"
        failed=1
    fi
}

run fast tensorflow --fast
run side-by-side tensorflow --fast --members 2 --members-per-step 2 --ema 0.99 --tta 4 --pseudo 0.999
run tutorial tensorflow --model tutorial --optimizer rmsprop --schedule plateau --validation 0.1 --members 2 \
    --epochs 2 --limit 3000 --affine layers --deterministic true
# two epochs of the gpu preset learn too little for the --min-accuracy floor: this run checks that the path runs
run gpu-preset tensorflow --preset gpu --limit 2000 --epochs 2 --members 4 --tta 0 --budget-minutes 1 --min-accuracy 0
run jax-workers jax --fast --members 2 --workers 2
exit $failed
