"""Several Kaggle sessions, one submission (`push.py run --sessions N`), through the stand-in of Kaggle's API."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, interruptible, offline, road

from digit_recognizer import submit
from kaggle_road import blend


def ledger_row(tmp_path) -> dict:
    rows = (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()
    assert len(rows) == 1
    return json.loads(rows[0])


def folder_of(tmp_path):
    return next((tmp_path / "runs").glob("*-sessions"))


def blended(folder, names) -> pd.DataFrame:
    """The submission the sessions' own files blend into."""
    probabilities, _ = blend.blend([folder / name / "test_probabilities.npz" for name in names])
    return submit.make_submission(probabilities)


@pytest.mark.parametrize("kernel", ["fake", pytest.param("real", marks=pytest.mark.slow)])
def test_three_sessions_make_one_submission_and_it_is_their_blend(standin, tmp_path, kernel):
    standin.fake = kernel == "fake"
    done = road(standin, tmp_path, "run", "--fast", "--sessions", "3", "--set", "members=2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert sorted(standin.runs) == [f"tester/digit-recognizer-kernel-s{n}" for n in (1, 2, 3)]
    assert len(standin.submissions) == 1  # one submission spent, for the blend
    folder = folder_of(tmp_path)
    sent = pd.read_csv(io.BytesIO(standin.submissions[0]["content"]))
    assert sent.equals(blended(folder, ["s1", "s2", "s3"]))
    seeds = [np.load(folder / name / "test_probabilities.npz")["seeds"].tolist() for name in ("s1", "s2", "s3")]
    assert seeds == [[42, 1042], [2042, 3042], [4042, 5042]]  # other members in each session, none trained twice
    row = ledger_row(tmp_path)
    assert row["members"] == 6 and row["outcome"] == "scored" and float(row["public_score"]) > 0.5
    assert [s["outcome"] for s in row["sessions"]] == ["in the blend"] * 3
    assert row["holdout"].startswith("hold-out (") and "the blend" in row["holdout"]
    assert "blend of 3 sessions" in standin.submissions[0]["description"]
    assert "s1 RUNNING" in done.stdout or "s1 QUEUED" in done.stdout  # one line a poll, every session on it


def test_a_session_that_fails_is_left_out_and_named(standin, tmp_path):
    standin.faults["crash"] = "-s2"
    done = road(standin, tmp_path, "run", "--fast", "--sessions", "3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "s2: left out: ended ERROR" in done.stdout and len(standin.submissions) == 1
    sent = pd.read_csv(io.BytesIO(standin.submissions[0]["content"]))
    assert sent.equals(blended(folder_of(tmp_path), ["s1", "s3"]))
    row = ledger_row(tmp_path)
    assert row["members"] == 2 and [s["outcome"][:8] for s in row["sessions"]] == ["in the b", "left out", "in the b"]


def test_over_the_cap_on_concurrent_sessions_a_push_waits_for_one_of_ours_to_end(standin, tmp_path):
    standin.cap = 2
    done = road(standin, tmp_path, "run", "--fast", "--sessions", "3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "s3: push: Kaggle refused the kernel: Maximum batch GPU session count of 2 reached; pushed again " \
           "when one of ours ends" in done.stdout
    assert len(standin.runs) == 3 and len(standin.submissions) == 1 and ledger_row(tmp_path)["members"] == 3


def test_interrupted_sessions_run_on_and_collect_submits_what_finished(standin, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), **standin.environment())
    running = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "push.py"), "run", "--fast", "--sessions", "2",
                                "--runs-dir", str(tmp_path / "runs"), "--poll", "0.3"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    for line in running.stdout:
        if line.startswith("pushed tester/digit-recognizer-kernel-s2"):
            running.send_signal(signal.SIGINT)
            break
    _, error = running.communicate(timeout=60)
    assert running.returncode == 130 and standin.submissions == []
    assert "interrupted: sessions s1, s2 keep running on Kaggle (not cancelled); `python scripts/push.py collect " \
           in error
    for run in (versions[0] for versions in standin.runs.values()):  # they do run on
        while run.status in ("QUEUED", "RUNNING"):
            time.sleep(0.2)
    done = road(standin, tmp_path, "collect", str(folder_of(tmp_path)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert len(standin.submissions) == 1 and ledger_row(tmp_path)["members"] == 2, done.stdout


def test_dry_run_prints_the_plan_and_spends_nothing(tmp_path):
    plan = ["run", "--dry-run", "--sessions", "3", "--runs-dir", str(tmp_path / "runs")]
    done = offline(tmp_path, *plan, "--preset", "gpu")
    assert done.returncode == 0, done.stderr
    # two GPU sessions run at once (an estimate): two waves of 110 minutes, the kernel's 30 and an hour's queue
    assert done.stdout == ("plan: 3 sessions of 16 members each (m5, 150 epochs), 48 in the blend at most; each "
                           "stops adding members after 110 minutes; up to 5.5 GPU hours of the weekly 30 (an "
                           "estimate); submissions left today: not known (no Kaggle credentials); one submission: "
                           "the blend; waits up to 6.7 hours\n")
    done = offline(tmp_path, *plan, "--preset", "cpu")
    assert "3 sessions of 24 members each" in done.stdout and "no GPU hours (CPU sessions)" in done.stdout
    # the road's wait follows the work: at least the 540 minutes each CPU session may train
    assert float(done.stdout.split("waits up to ")[1].split(" hours")[0]) >= 9
    done = offline(tmp_path, *plan[:3], "1000", *plan[4:], "--preset", "gpu")
    assert "up to 1833.3 GPU hours" in done.stdout and "warning: if the sessions run to their budget, that is " \
                                                         "more GPU time than the week holds" in done.stdout
    assert not (tmp_path / "runs").exists()

