"""The one prepared GPU check: what a GPU does with our members, in under ten minutes, on a machine with JAX and
no TensorFlow or internet (a lent one; `experiments/gpu_checks.sh check OUT` runs it there).

  1. `bn` at --members-per-step 1, 4 and 16: member-images per second (members x rows / steady epoch seconds);
  2. one member of the `gpu` preset's family (m5 at its batch), and the preset's own step of two members;
  3. the budget model: a short `gpu` preset run through the pipeline, the training and prediction time its first
     epochs foresaw against the time they took; then what the whole `gpu` preset would take on this device.

Stages run in that order while --minutes allow; the row (OUT/results.jsonl) is rewritten after each, so a run cut
short still brings back what it measured. `--quick` runs the same code at toy sizes (on this CPU: a test);
`--bn-only --rows 8600 --steps 1,2,4,8` measures stage 1 alone on any device, a CPU too.
"""

import argparse
import dataclasses
import json
import math
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(data_dir, rows: int):
    """The training rows the recipe trains on (the 90% the hold-out leaves), the first `rows` of them."""
    from digit_recognizer import data
    images, labels, _ = data.arrays(data.find_data(data_dir))
    kept = data.split(labels, 0.1, 42)[0][:rows]
    return images[kept], labels[kept]


def quick_copy(data_dir, folder: pathlib.Path, rows: int) -> pathlib.Path:
    """The first `rows` training rows (and the hold-out's share) and 100 test rows: a pipeline run in seconds."""
    from digit_recognizer import data
    train_frame, test_frame = data.load(data.find_data(data_dir))
    folder.mkdir(parents=True, exist_ok=True)
    train_frame.iloc[: rows + rows // 9].to_csv(folder / "train.csv", index=False)
    test_frame.iloc[:100].to_csv(folder / "test.csv", index=False)
    return folder


def steady_rate(config, images, labels, members: int, epochs: int) -> dict:
    """Trains `members` side by side for `epochs`; the first epoch compiles, the median of the rest is steady."""
    import keras
    from digit_recognizer import config as configuration, devices, train
    seconds = []
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seconds.append(-time.perf_counter()),
                                           on_epoch_end=lambda epoch, logs: seconds.append(seconds.pop()
                                                                                           + time.perf_counter()))
    config = dataclasses.replace(config, epochs=epochs, verbose=0, min_steps=0, members_per_step=members,
                                 precision=devices.precision(config))  # as the ensemble decides it, once
    train.fit_members(config, (images, labels), configuration.member_specs(config, range(members)), callbacks=[clock])
    keras.backend.clear_session()
    steady = statistics.median(seconds[1:])
    return {"members": members, "first_epoch_s": round(seconds[0], 2), "epoch_s": round(steady, 3),
            "member_images_per_s": round(members * len(images) / steady)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT / ".data"), help="the replica (gpu_checks.sh prepare copies it)")
    parser.add_argument("--out", required=True, help="folder for results.jsonl and the run's output")
    parser.add_argument("--minutes", type=float, default=8.0, help="no stage starts past this")
    parser.add_argument("--quick", action="store_true", help="toy sizes: a check of the script, not of a GPU")
    parser.add_argument("--rows", type=int, help="training rows the stages time (37,800; --quick: 256)")
    parser.add_argument("--steps", type=lambda text: [int(k) for k in text.split(",")],
                        help="members per step for `bn` (1,4,16; --quick: 1,2)")
    parser.add_argument("--bn-only", action="store_true", help="only stage 1: members per step on any device")
    args = parser.parse_args(argv)
    started = time.time()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from digit_recognizer import config as configuration, data, devices, pipeline, quiet
    with quiet.start_up_hidden():  # Keras and its backend, without TensorFlow's C++ start-up lines
        import keras
    rows, epochs, steps = (256, 2, [1, 2]) if args.quick else (37_800, 3, [1, 4, 16])
    rows, steps = args.rows or rows, args.steps or steps
    device = devices.accelerator()
    row = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "check": "gpu", "quick": args.quick,
           "backend": keras.backend.backend(), "keras": keras.__version__, "device": device,
           "gpus": devices.visible_gpus(), "rows": rows, "epochs_timed": epochs}

    def save(stage):
        row["seconds"] = round(time.time() - started, 1)
        (out / "results.jsonl").write_text(json.dumps(row) + "\n")
        print(f"gpu check: {stage} done at {row['seconds']} s: {json.dumps(row[stage])}", flush=True)

    def time_left():
        return time.time() - started < 60 * args.minutes

    images, labels = load(args.data_dir, rows)
    recipe = configuration.PRESETS["gpu"]
    row["bn"] = []
    for members in steps:
        if time_left():
            row["bn"].append(steady_rate(configuration.Config(model="bn"), images, labels, members, epochs))
            save("bn")
    row["gpu_family"] = []
    for members in sorted({1, recipe.members_per_step}):
        if time_left() and not args.bn_only:
            row["gpu_family"].append(steady_rate(recipe, images, labels, members, epochs))
            save("gpu_family")
    if time_left() and not args.bn_only:
        # two groups of the preset's step, a few epochs each, the whole pipeline: read, train, TTA, write; a few
        # epochs learn too little for the --min-accuracy floor, which this stage does not measure
        short = dataclasses.replace(recipe, members=2 * recipe.members_per_step, epochs=epochs, budget_minutes=0,
                                    verbose=0, min_accuracy=0.0)
        source = data.find_data(quick_copy(args.data_dir, out / "data", rows) if args.quick else args.data_dir)
        summary = pipeline.run(short, source, out / "run", plots=False)
        row["budget_model"] = {"members": short.members, "epochs": short.epochs,
                               "estimated_s": summary["estimated_train_predict_seconds"],
                               "measured_s": round(summary["seconds"]["train"] + summary["seconds"]["predict"], 1),
                               "measured_train_s": summary["seconds"]["train"],
                               "total_s": summary["seconds"]["total"],
                               "holdout_accuracy": summary["ensemble_holdout_accuracy"]}
        save("budget_model")
    if row["gpu_family"]:
        # the whole preset from the measured step: every group compiles once, then trains its epochs
        step = row["gpu_family"][-1]
        groups = math.ceil(recipe.members / step["members"])
        full_rows = 37_800
        epoch_s = step["epoch_s"] * full_rows / rows
        one_gpu = groups * (step["first_epoch_s"] - step["epoch_s"] + recipe.epochs * epoch_s)
        row["gpu_preset_forecast_min"] = {"one_gpu": round(one_gpu / 60, 1), "two_gpus": round(one_gpu / 120, 1)}
        save("gpu_preset_forecast_min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
