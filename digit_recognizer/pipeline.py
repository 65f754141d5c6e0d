"""The whole run, as kernel.py calls it: data -> ensemble -> submission.csv, with a printed account."""

import dataclasses
import json
import pathlib
import resource
import sys
import time

import numpy as np

from digit_recognizer import budget, data, predictions, quiet, report, submit


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def learned(config, result) -> dict:
    """What the run learned, checked against --min-accuracy: its accuracy on the hold-out, else on its training
    rows (each member's last epoch), and `refused`, a reason, when no submission may be written from it."""
    if result.ensemble_accuracy is not None:
        accuracy, on = result.ensemble_accuracy, "the hold-out"
    else:
        accuracy, on = float(np.mean([h["accuracy"][-1] for h in result.histories])), "its training rows"
    found = {"accuracy": round(accuracy, 5), "on": on, "floor": config.min_accuracy, "refused": None}
    if not np.isfinite(result.test_probabilities).all():
        found["refused"] = "the test predictions are not all numbers (NaN or infinity)"
    elif not accuracy >= config.min_accuracy:
        found["refused"] = (f"accuracy {accuracy:.5f} on {on} is below --min-accuracy {config.min_accuracy:g}: the "
                            "run learned too little to submit (try a lower --learning-rate or more --epochs; "
                            "--min-accuracy 0 writes it all the same)")
    return found


class Laps:
    """Where a run's time goes: the seconds of each phase, in order, called as each ends."""

    def __init__(self):
        self.started = self.clock = time.perf_counter()
        self.seconds = {}

    def __call__(self, phase: str):
        now = time.perf_counter()
        self.seconds[phase], self.clock = round(now - self.clock, 2), now


def run(config, source: data.Source, out_dir, log=print, plots=True) -> dict:
    """Trains and writes `out_dir/submission.csv`, summary.json and (with `plots`) the pictures of the run. A run
    that learned too little (`learned`) writes summary.json alone and raises a ValueError."""
    laps = Laps()
    config = budget.session_budget(config, log)
    deadline = budget.Deadline.of(config)  # the budget counts from here
    out_dir = submit.writable_folder(out_dir)
    log(f"config: {json.dumps(dataclasses.asdict(config))}")
    log(f"data: {source.describe()}")
    # The backend's import (seconds on a CPU) and the reading of the files take about as long: a forked process
    # reads while this one imports. The data's faults are told once the import is done.
    reading = data.Reading(source, config.limit) if "keras" not in sys.modules else None
    with quiet.start_up_hidden():
        from digit_recognizer import devices, ensemble
    laps("imports")
    rows, held, facts = read(config, source, log, reading)
    laps("read and check")
    log(devices.found())

    result = ensemble.train_members(config, rows, deadline, log)
    laps("train and predict")
    if result.workers == 1:  # several workers' seconds overlap: then the lap stays whole
        laps.seconds["train"] = round(result.train_seconds, 2)
        laps.seconds["predict"] = round(laps.seconds.pop("train and predict") - result.train_seconds, 2)
    for failure in result.failures:
        log(f"workers: {failure}; the submission is the average of the other workers' members")

    summary = account(config, result, facts, laps.seconds)
    if summary["learned"]["refused"]:
        submit.write_json(out_dir / "summary.json", summary)
        raise ValueError(f"{summary['learned']['refused']}; no submission.csv written (summary.json says what "
                         f"was learned)")
    def write_set():
        write_files(out_dir, config, result, rows, held, summary)
        laps("write")
        if plots:
            summary["plots"] = [p.name for p in report.write_plots(out_dir, facts["label_counts"], result,
                                                                   rows.holdout)]
            laps("plots")
        laps.seconds["total"] = round(time.perf_counter() - laps.started, 2)

    publish(out_dir, summary, write_set)
    tell(config, result, summary, log)
    log(f"wrote {summary['submission']}" + (f" and {len(summary['plots'])} pictures" if plots else ""))
    return summary


def read(config, source: data.Source, log, reading: data.Reading | None = None):
    """The data, read and checked before anything trains (or what `reading` read): the Rows the members train on,
    the numbers of the held-out rows, and what summary.json says of the data."""
    pixels, labels, test_pixels = reading.result() if reading else data.cells(source, config.limit)
    counts = data.label_counts(labels)
    log(f"train {len(labels)} rows, test {len(test_pixels)} rows; label counts {counts}")
    data.check_labels(labels, source.train.name)
    kept, held = data.split(labels, config.holdout, config.holdout_seed)
    data.check_split(labels[kept], config.validation, "--validation")  # each member splits; fail here, not there
    # split as uint8, then scaled: the float32 images are made once, a quarter of the bytes copied
    holdout = (data.as_images(pixels[held]), labels[held]) if len(held) else None
    rows = data.Rows(data.as_images(pixels[kept]), labels[kept], data.as_images(test_pixels), holdout)
    facts = {"data_source": source.describe(),
             "data_kind": source.kind,  # "kaggle" where Kaggle mounted the data: push.py checks it before submitting
             "train_rows": int(len(kept)), "holdout_rows": int(len(held)), "test_rows": int(len(test_pixels)),
             "label_counts": counts}
    return rows, held, facts


def publish(out_dir, summary: dict, write) -> None:
    """The run's files as one set: summary.json first says they are incomplete, `write()` writes the rest, then
    summary.json is whole. A run stopped between the two leaves a folder that says so, and push.py submits
    nothing from it (an older run's submission.csv beside a newer run's summary would pass for the newer)."""
    submit.write_json(pathlib.Path(out_dir) / "summary.json", dict(summary, files="incomplete"))
    write()
    submit.write_json(pathlib.Path(out_dir) / "summary.json", summary)


def write_files(out_dir, config, result, rows: data.Rows, held, summary: dict) -> pathlib.Path:
    """submission.csv and the predictions behind it, named in `summary`: the submission's path."""
    path = submit.write_submission(result.test_probabilities, out_dir / "submission.csv", len(rows.test_images))
    summary["submission"] = str(path)
    summary["test_probabilities"] = predictions.write_test(out_dir, config, result).name
    if rows.holdout is not None:
        summary["holdout_predictions"] = predictions.write_holdout(out_dir, config, result, held,
                                                                   rows.holdout[1]).name
    return path


def account(config, result, facts: dict, seconds: dict) -> dict:
    """summary.json: what the run was given, what it learned and what it cost."""
    return {
        "config": dataclasses.asdict(config),
        **facts,
        "member_holdout_accuracy": result.member_accuracy,
        "ensemble_holdout_accuracy": result.ensemble_accuracy,
        **({} if result.first_round is None else {"first_round_holdout_accuracy": {
            "members": result.first_round.member_accuracy, "ensemble": result.first_round.ensemble_accuracy}}),
        "learned": learned(config, result),
        "seconds": seconds,
        "members_trained": len(result.member_indices),
        "members_cut_short": [k + 1 for k in result.budget.cut_short],  # by the budget, before their last epoch
        "estimated_train_predict_seconds": (None if result.budget.estimate_seconds is None
                                            else round(result.budget.estimate_seconds, 1)),
        "budget_stops": result.budget.stopped,
        "worker_failures": result.failures,
        "images_per_second": round(result.images_per_second, 1),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "device": result.device,
        "precision": result.precision,
        "versions": report.versions(),
        "bundle_hash": report.bundle_hash(),
    }


def tell(config, result, summary, log) -> None:
    """The run's last lines: accuracy, budget, time, speed."""
    accuracy = "n/a (no hold-out)" if result.ensemble_accuracy is None else f"{result.ensemble_accuracy:.5f}"
    log(f"hold-out accuracy: {accuracy}; members {[round(a, 5) for a in result.member_accuracy]}")
    if result.budget.stopped:
        cut = f", {budget.named(result.budget.cut_short)} cut short" if result.budget.cut_short else ""
        log(f"budget: {summary['members_trained']} of {config.members} members trained in the "
            f"{config.budget_minutes:g} minutes{cut}; the submission is their average")
    log("time: " + ", ".join(f"{phase} {value:.1f} s" for phase, value in summary["seconds"].items()))
    log(f"{result.images_per_second:.0f} training images/s on {result.device} ({result.precision}); "
        f"peak memory {summary['peak_memory_mb']:.0f} MB")
