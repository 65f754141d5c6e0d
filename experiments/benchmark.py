"""Figures for the README, each measured by running the real thing.

  python experiments/benchmark.py fast       --data-dir ../shared/digit-recognizer   # kernel.py --fast, whole process
  python experiments/benchmark.py fast                                               # the same on the demo sample
  python experiments/benchmark.py throughput --data-dir ../shared/digit-recognizer   # seed model: ours vs the tutorial's
  python experiments/benchmark.py race       --data-dir ../shared/digit-recognizer   # the tutorial's accuracy: its time vs ours
  python experiments/benchmark.py recipe     --data-dir ../shared/digit-recognizer --preset full   # a results row
  python experiments/benchmark.py oof        --data-dir ../shared/digit-recognizer --preset full   # every row scored once (resumes)
  python experiments/benchmark.py oof ... --set pseudo=0.999 --teacher benchmarks/oof-a   # + its pseudo-labels by fold
  python experiments/benchmark.py road       --data-dir ../shared/digit-recognizer   # bundle, then push.py through the stand-in
  python experiments/benchmark.py pool output/a/holdout_predictions.npz output/b/holdout_predictions.npz   # no training
  python experiments/benchmark.py pool benchmarks/oof-a benchmarks/oof-b   # oof folders: the folds both have saved
  python experiments/benchmark.py pool benchmarks/oof-a benchmarks/oof-b --stack 0.01   # and a learned weighting
  python experiments/benchmark.py compare benchmarks/oof-a vs benchmarks/oof-b:1   # image by image, and fold by fold; :1 = member 1
  python experiments/benchmark.py compare benchmarks/oof-a vs benchmarks/oof-a --average geometric --average arithmetic

`throughput` and `race` run the tutorial's own pipeline beside ours (experiments/versus_tutorial.py; they need
`pip install -e ".[bench]"`). Every command appends its row to benchmarks/results.jsonl and prints it.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

from experiments.pooling import AVERAGES, compare, draw_pooled_errors, load_pool, member_curve, pool, stacked

ROOT = pathlib.Path(__file__).resolve().parents[1]


def machine(cpuinfo=pathlib.Path("/proc/cpuinfo")) -> str:
    """This machine as a row names it: its cores and the widest vector instructions its CPU has. The same code
    runs several times faster with AVX512-BF16 than with AVX2 alone, so rows of the two do not compare (the
    research log)."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        flags = set()
    widest = [name for name in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if name in flags][:1]
    return " ".join([platform.machine(), f"{os.cpu_count()} cores", *widest])


def record(row: dict, results: pathlib.Path) -> dict:
    from kaggle_road import ledger
    row = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), **row}
    ledger.append(results, row)
    print(json.dumps(row, indent=1))
    return row


def bench_fast(args) -> dict:
    """The whole `kernel.py --fast` process once per seed of `--seeds` (42,42,42: three identical runs): seconds from
    the start of the process to submission.csv written (its rename's time) and to the process's end, pictures
    included (medians, because identical runs here vary by up to 2x), each run's hold-out accuracy, where the time
    went (kernel.py's own account), peak memory. Without --data-dir it runs in an empty folder: the demo sample."""
    import tempfile
    from digit_recognizer import config as configuration
    out = ROOT / "output" / "benchmark-fast"
    command = [sys.executable, str(ROOT / "kernel.py"), "--fast", "--out", str(out)]
    command += ["--data-dir", str(pathlib.Path(args.data_dir).resolve())] if args.data_dir else []
    try:
        command += configuration.settings_flags(args.set)
    except ValueError as error:
        sys.exit(f"error: {error}")
    walls, to_submission, accuracies, phases = [], [], [], []
    for seed in args.seeds:
        started = time.time()
        done = subprocess.run(command + ["--seed", str(seed)], capture_output=True, text=True,
                              cwd=None if args.data_dir else tempfile.mkdtemp())
        walls.append(round(time.time() - started, 1))
        if done.returncode:
            sys.exit(f"kernel.py failed:\n{done.stderr[-2000:]}")
        to_submission.append(round((out / "submission.csv").stat().st_mtime - started, 1))
        summary = json.loads((out / "summary.json").read_text())
        accuracies.append(summary["ensemble_holdout_accuracy"])
        phases.append(summary["seconds"])
    return {"benchmark": "fast", "command": " ".join(["python kernel.py", *command[2:]]), "seeds": args.seeds,
            "data": summary["data_source"].split(":")[0],
            "to_submission_seconds": statistics.median(to_submission), "to_submission_seconds_each": to_submission,
            "wall_seconds": statistics.median(walls), "wall_seconds_each": walls,
            "holdout_accuracy": statistics.median(accuracies), "holdout_accuracy_each": accuracies,
            "holdout_rows": summary["holdout_rows"], "seconds_each": phases,
            "train_images_per_second": summary["images_per_second"],
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "precision": summary["precision"]}


def recipe_config(args):
    """A preset with overrides, parsed as kernel.py parses its flags (so types and checks are the same): the
    config and the override flags."""
    from digit_recognizer import config as configuration
    flags = ["--preset", args.preset]
    for field, value in (("epochs", args.epochs_override), ("members", args.members), ("model", args.model)):
        flags += [f"--{field}", str(value)] if value else []
    try:
        flags += configuration.settings_flags(args.set)
        return configuration.parse_flags(flags), flags[2:]
    except ValueError as error:
        sys.exit(f"error: {error}")


def bench_recipe(args) -> dict:
    from digit_recognizer import data, pipeline
    config, overrides = recipe_config(args)
    out = pathlib.Path(args.out) if args.out else ROOT / "output" / f"benchmark-{args.preset}"
    try:
        summary = pipeline.run(config, data.find_data(args.data_dir), out)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    return {"benchmark": "recipe", "recipe": args.preset, "overrides": overrides, **{k: summary[k] for k in (
        "member_holdout_accuracy", "ensemble_holdout_accuracy", "seconds", "images_per_second",
        "peak_memory_mb", "device", "precision")}, "members": config.members, "epochs": config.epochs,
        "model": config.model}


def bench_oof(args) -> dict | None:
    """Out of fold (experiments/out_of_fold.py): every train row scored once, by members that never saw it."""
    from experiments import out_of_fold
    config, overrides = recipe_config(args)
    try:
        return out_of_fold.run(args, config, overrides, ROOT / "output" / f"oof-{args.preset}")
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"error: {error}")


def bench_pool(args) -> dict:
    if not args.npz:
        sys.exit("error: pool needs at least one holdout_predictions.npz (written by a run with a hold-out)")
    try:
        pooled = load_pool(args.npz)
        row = {**pool(pooled, args.average[0]), "runs": [str(path) for path in args.npz]}
        if args.stack:
            row["stacked"] = stacked(pooled, args.stack)
        if args.curve:
            row["member_curve"] = member_curve(pooled, average=args.average[0])
        if args.picture:
            row["picture"] = str(draw_pooled_errors(pooled, args.data_dir, args.picture, args.average[0]))
        return row
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"error: {error}")


def bench_compare(args) -> dict:
    """Two ensembles on the same rows, `A ... vs B ...`: which images each misses, and whether the difference is
    more than chance (pooling.compare)."""
    if args.npz.count("vs") != 1 or args.npz[0] == "vs" or args.npz[-1] == "vs":
        sys.exit("error: compare needs two sides, e.g. `compare benchmarks/oof-a vs benchmarks/oof-b:1` (a run's "
                 "npz or oof folder, :K,L for some of its members)")
    cut = args.npz.index("vs")
    try:
        return compare(args.npz[:cut], args.npz[cut + 1:], (args.average * 2)[:2])
    except (OSError, KeyError, ValueError) as error:
        sys.exit(f"error: {error}")


def bench_road(args) -> dict:
    """Bundling time and size, then the README's rehearsal of the road (`push.py run --fast` through the stand-in
    of Kaggle's API, tests/kaggle_standin.py, the kernel run for real), start to score."""
    import tempfile

    from kaggle_road import bundle
    started = time.perf_counter()
    path, _ = bundle.build(["--fast"], pathlib.Path(tempfile.mkdtemp()) / "kernel.py")
    bundle_seconds = time.perf_counter() - started
    runs = tempfile.mkdtemp()
    command = [sys.executable, str(ROOT / "tests" / "kaggle_standin.py"), "--data-dir",
               args.data_dir or "../shared/digit-recognizer", "run", "--fast", "--poll", "2", "--runs-dir", runs]
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(os.environ, HOME=runs), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"the rehearsal failed:\n{done.stderr[-2000:]}")
    return {"benchmark": "road", "bundle_seconds": round(bundle_seconds, 3), "bundle_bytes": path.stat().st_size,
            "road_seconds": round(seconds, 1),
            "command": "python tests/kaggle_standin.py --data-dir DATA run --fast (the road through the stand-in)"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fast", "throughput", "race", "recipe", "oof", "road", "pool", "compare"])
    parser.add_argument("npz", nargs="*", help="pool: holdout_predictions.npz files of runs with the same hold-out, "
                        "or oof --out folders (the folds saved in all of them); compare: the same, as A ... vs B ..., "
                        "each optionally PATH:K,L for members K and L of that run")
    parser.add_argument("--data-dir", help="competition folder (default: found as kernel.py finds it)")
    parser.add_argument("--repeat", type=int, default=3, help="throughput: runs to take the median of")
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[42, 7, 123],
                        help="fast: one run per seed (comma-separated), the median time and accuracy reported")
    parser.add_argument("--rows", type=int, default=8600, help="throughput: training rows per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="throughput: epochs (the first is not counted)")
    parser.add_argument("--batch-size", type=int, default=128, help="throughput: our side's batch size")
    parser.add_argument("--tutorial-epochs", type=int, default=30, help="race: the tutorial's epochs")
    parser.add_argument("--preset", default="full", help="recipe, oof: the preset to run")
    parser.add_argument("--epochs-override", type=int, help="recipe, oof: override the preset's epochs")
    parser.add_argument("--members", type=int, help="recipe, oof: override the preset's members")
    parser.add_argument("--model", help="recipe, oof: override the preset's model families (e.g. bn)")
    parser.add_argument("--out", help="recipe, oof: output folder (default: output/benchmark-PRESET or oof-PRESET)")
    parser.add_argument("--folds", type=int, default=10, help="oof: stratified folds of train, each scored once")
    parser.add_argument("--fold", type=int, action="append", help="oof: train only this fold, 1 to --folds "
                        "(repeatable); a fold saved in --out is never trained again")
    parser.add_argument("--teacher", action="append", metavar="DIR", help="oof, with --set pseudo=C: also train "
                        "on the test images that this oof folder's members of the same fold label with confidence "
                        ">= C (repeatable: their members averaged)")
    parser.add_argument("--picture", help="pool: draw the pooled ensemble's worst hold-out errors here (a .png; "
                        "reads train.csv from --data-dir, and the first run's npz must hold rows)")
    parser.add_argument("--average", choices=AVERAGES, action="append", help="pool, compare: how an ensemble joins "
                        "its members' softmax (default arithmetic, the kernel's; geometric: mean log-probability); "
                        "compare: given twice, side A's then side B's")
    parser.add_argument("--stack", type=float, action="append", metavar="C", help="pool, oof folders only: also "
                        "a logistic regression over the members' log-probabilities, fitted fold by fold, at this "
                        "inverse regularisation (repeatable)")
    parser.add_argument("--curve", action="store_true", help="pool: also the errors of random k-member subsets, "
                        "k = 1 to all, and the floor a + b/k fitted to them points at")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="recipe, oof, fast: override any Config field, as kernel.py's flag would "
                        "(e.g. --set decay=0.8)")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results.jsonl"))
    args = parser.parse_args()
    if len(args.average or ()) > (2 if args.what == "compare" else 1):
        parser.error("--average: once, or twice for compare's two sides")
    args.average = args.average or ["arithmetic"]
    from experiments import versus_tutorial
    bench = {"fast": bench_fast, "throughput": versus_tutorial.bench_throughput, "race": versus_tutorial.bench_race,
             "recipe": bench_recipe, "oof": bench_oof, "road": bench_road, "pool": bench_pool,
             "compare": bench_compare}[args.what]
    row = bench(args)
    if row is not None:  # an oof run with folds still to train has no row yet
        record(row, pathlib.Path(args.results))


if __name__ == "__main__":
    main()
