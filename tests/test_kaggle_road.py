"""The road to Kaggle, run through the stand-in of Kaggle's API with the real `kaggle` package."""

import json
import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

import bundle  # scripts/, on pytest's pythonpath
import push
from kaggle_standin import StandIn

from digit_recognizer import data as data_module
from digit_recognizer.config import PRESETS

ROOT = pathlib.Path(__file__).resolve().parents[1]

TINY = ["--epochs", "1", "--min-steps", "0", "--verbose", "0"]


def test_bundle_is_deterministic_small_and_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key-0123456789")
    first, digest = bundle.build(["--fast"], tmp_path / "a.py")
    second, again = bundle.build(["--fast"], tmp_path / "b.py")
    assert first.read_bytes() == second.read_bytes() and digest == again
    assert first.stat().st_size < 1_000_000
    text = first.read_text()
    assert "not-a-real-key-0123456789" not in text and f'BUNDLE_HASH = "{digest}"' in text
    assert "def main(argv=None)" in text  # kernel.py rides along verbatim
    assert bundle.build(["--fast", "--epochs", "3"], tmp_path / "c.py")[1] != digest


def test_bundle_refuses_a_credential_in_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "import")  # too short to be a key: ignored
    bundle.build([], tmp_path / "ok.py")
    monkeypatch.setenv("KAGGLE_KEY", "digit_recognizer")  # a "key" that does occur in the source
    with pytest.raises(ValueError, match="credential"):
        bundle.build([], tmp_path / "leak.py")


def test_bundle_writes_the_same_submission_as_kernel_py(competition_dir, tmp_path):
    built, digest = bundle.build(["--fast"], tmp_path / "build" / "kernel.py")
    empty = tmp_path / "empty"
    empty.mkdir()
    common = [*TINY, "--data-dir", str(competition_dir)]
    from_bundle = subprocess.run([sys.executable, str(built), *common, "--out", str(empty / "out")], cwd=empty,
                                 capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=""))
    assert from_bundle.returncode == 0, from_bundle.stderr[-2000:]
    assert f"bundle {digest}" in from_bundle.stdout
    from_source = subprocess.run([sys.executable, str(ROOT / "kernel.py"), "--fast", *common, "--out",
                                  str(tmp_path / "src")], capture_output=True, text=True, timeout=300)
    assert from_source.returncode == 0, from_source.stderr[-2000:]
    assert (empty / "out" / "submission.csv").read_bytes() == (tmp_path / "src" / "submission.csv").read_bytes()


def test_a_bundle_deals_members_to_worker_processes_as_on_two_gpus(competition_dir, tmp_path):
    """Kaggle's two T4s start one worker process each, importing the package from the bundle's zip: two CPU
    workers here, whose members make the submission one process makes."""
    built, _ = bundle.build(["--fast", "--members", "2", "--workers", "2"], tmp_path / "kernel.py")
    common = [*TINY, "--no-plots", "--data-dir", str(competition_dir)]
    apart = subprocess.run([sys.executable, str(built), *common, "--out", str(tmp_path / "apart")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert apart.returncode == 0, apart.stderr[-2000:]
    assert "[worker 1] member 1/2" in apart.stdout and "[worker 2] member 2/2" in apart.stdout
    alone = subprocess.run([sys.executable, str(ROOT / "kernel.py"), "--fast", "--members", "2", *common, "--out",
                            str(tmp_path / "alone")], capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert (tmp_path / "apart" / "submission.csv").read_bytes() == (tmp_path / "alone" / "submission.csv").read_bytes()


def test_a_bundle_killed_with_sigterm_removes_its_zip(competition_dir, tmp_path):
    built, _ = bundle.build(["--fast"], tmp_path / "kernel.py")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-u", str(built), *TINY, "--epochs", "200", "--verbose", "2",
               "--data-dir", str(competition_dir), "--out", str(tmp_path / "out")]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=""))
    for line in running.stdout:
        if line.startswith("Epoch 2/"):
            assert list(scratch.glob("digit_recognizer-*.zip"))  # the package, unpacked while it runs
            running.terminate()
            break
    running.communicate(timeout=120)
    assert running.returncode == 143 and not list(scratch.iterdir())


@pytest.fixture
def standin(tmp_path, sample_frames):
    train, test = sample_frames
    data = tmp_path / "data"
    data.mkdir()
    train.sample(300, random_state=0).to_csv(data / "train.csv", index=False)
    test.iloc[:40].to_csv(data / "test.csv", index=False)
    # the sample's test labels, to score against: the same stratified split load_sample makes
    table = pd.read_csv(data_module.sample_path(), header=None)
    _, held = data_module.split(table.iloc[:, -1].to_numpy(), 0.2, seed=0)
    pd.DataFrame({"ImageId": range(1, 41), "Label": table.iloc[held[:40], -1].to_numpy()}).to_csv(
        tmp_path / "answers.csv", index=False)
    server = StandIn(data, tmp_path / "answers.csv", scratch=tmp_path / "scratch").start()
    yield server
    server.stop()


def road(standin, tmp_path, *args):
    env = dict(os.environ, HOME=str(tmp_path), **standin.environment())
    command = [sys.executable, str(ROOT / "scripts" / "push.py"), "--runs-dir", str(tmp_path / "runs"), "--poll",
               "0.3", "--backoff", "0.05", "--retries", "2", "--stale-grace", "30", "--timeout", "240", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def test_whole_road_through_the_standin(standin, tmp_path):
    standin.faults.update(stale="2", GetKernelSessionStatus="429x1")  # a stale status, then a rate limit
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "pushed tester/digit-recognizer-kernel version 1" in done.stdout
    assert "RUNNING" in done.stdout or "QUEUED" in done.stdout  # waited past the stale COMPLETE
    ledger = [json.loads(line) for line in (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 1 and ledger[0]["version"] == 1
    score = float(ledger[0]["public_score"])
    assert 0.5 < score <= 1.0 and f"public score {ledger[0]['public_score']}" in done.stdout
    assert ledger[0]["config"]["model"] == PRESETS["fast"].model and ledger[0]["holdout_accuracy"] is not None
    submission = next((tmp_path / "runs").rglob("submission.csv"))
    assert len(pd.read_csv(submission)) == 40
    assert standin.submissions[0]["description"].startswith("commit ")


@pytest.mark.parametrize("fault, message", [
    ({"SaveKernel": "401"}, "push: 401, credentials rejected"),
    ({"SaveKernel": "403"}, "accept the competition rules at https://www.kaggle.com/competitions/digit-recognizer"),
    ({"SaveKernel": "404"}, "push: 404, not found"),
    ({"SaveKernel": "500"}, "push: HTTP 500 after 2 tries"),
    ({"SaveKernel": "429"}, "push: HTTP 429 after 2 tries"),
    ({"save_error": "Notebook not found"}, "push: Kaggle refused the kernel: Notebook not found"),
])
def test_api_faults_give_one_line_and_nonzero_exit(standin, tmp_path, fault, message):
    standin.faults.update(fault)
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_slow_answers_time_out(standin, tmp_path):
    standin.faults.update(slow="2")
    done = road(standin, tmp_path, "status", "--http-timeout", "0.5")
    assert done.returncode == 1 and "status: no answer after 2 tries" in done.stderr


def test_a_push_that_times_out_is_not_sent_again(standin, tmp_path):
    standin.faults["slow.SaveKernel"] = "2.5"  # the kernel still starts, after the client gave up
    done = road(standin, tmp_path, "run", "--fast", "--http-timeout", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(standin.runs["tester/digit-recognizer-kernel"]) == 1  # one GPU session, not four
    assert "push: no answer (ReadTimeout), but tester/digit-recognizer-kernel is now RUNNING" in done.stdout
    assert json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())["public_score"] is not None


def test_a_push_that_times_out_and_starts_nothing_says_so(standin, tmp_path):
    standin.faults.update({"slow.SaveKernel": "1.5", "save_error": "refused late"})  # nothing starts
    done = road(standin, tmp_path, "push", "--http-timeout", "0.5", "--stale-grace", "3")
    assert done.returncode == 1 and standin.runs == {}
    assert "no run of tester/digit-recognizer-kernel started within 3 s; not sent again" in done.stderr


def test_a_submission_that_times_out_is_found_not_sent_again(standin, tmp_path):
    standin.faults["slow.CreateSubmission"] = "1.5"
    path = tmp_path / "submission.csv"
    pd.DataFrame({"ImageId": range(1, 28001), "Label": 1}).to_csv(path, index=False)
    done = road(standin, tmp_path, "submit", str(path), "--http-timeout", "0.8", "--message", "try 1")
    assert len(standin.submissions) == 1, done.stderr
    assert f"Kaggle lists it as {standin.submissions[0]['ref']}: not sent again" in done.stdout


def test_a_score_that_fails_after_the_submit_leaves_its_ref_for_later(standin, tmp_path):
    standin.faults["ListSubmissions"] = "500"
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 1 and "score: HTTP 500" in done.stderr
    row = json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())
    assert row["submission_ref"] == standin.submissions[0]["ref"] and row["public_score"] is None
    del standin.faults["ListSubmissions"]
    done = road(standin, tmp_path, "score")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["public_score"] is not None and rows[1]["time"] == rows[0]["time"]


@pytest.mark.parametrize("saved, says", [
    ('["tester", "key"]', "kaggle.json: not a JSON object; it must hold username and key"),
    ('{"username": "tester"}', "kaggle.json: no key; it must hold username and key"),
])
def test_a_broken_kaggle_json_is_one_line_before_any_work(tmp_path, saved, says):
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text(saved)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "run", "--fast",
                           "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True,
                          env=dict(env, HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9"))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert done.stdout == ""  # nothing bundled, no login help


def test_crashing_kernel_is_reported_and_recorded(standin, tmp_path):
    standin.faults.update(crash="1")
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 1 and "kernel ended ERROR: RuntimeError: injected crash" in done.stderr
    ledger = (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 1 and json.loads(ledger[0])["public_score"] is None


def test_failed_output_download_is_caught(standin, tmp_path):
    # kaggle 2.2.5 raises on the 500; earlier 2.2.x clients wrote the error body into the file (next test)
    standin.faults.update(files="500")
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 1 and "error: output: " in done.stderr, done.stderr[-2000:]
    assert len((tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()) == 1
    assert standin.submissions == []


def test_an_error_page_saved_as_the_submission_is_caught(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text('{"code": 500, "message": "injected fault"}')
    with pytest.raises(push.KaggleError, match="^output: "):
        push.KaggleSteps.check_submission(path)
    assert path.exists()  # what came down is kept, to look at


def test_failed_upload_is_an_error_not_a_silent_exit(standin, tmp_path):
    standin.faults.update(upload="400")
    path = tmp_path / "submission.csv"
    pd.DataFrame({"ImageId": range(1, 28001), "Label": 1}).to_csv(path, index=False)
    done = road(standin, tmp_path, "submit", str(path))
    assert done.returncode == 1 and "submit: Kaggle did not take the file: Could not submit" in done.stderr
    assert standin.submissions == [] and not (tmp_path / "runs" / "ledger.jsonl").exists()  # nothing spent


def test_a_file_submitted_alone_is_scored_and_recorded(standin, tmp_path):
    blended = tmp_path / "blend"
    blended.mkdir()
    pd.DataFrame({"ImageId": range(1, 28001), "Label": 1}).to_csv(blended / "submission.csv", index=False)
    (blended / "summary.json").write_text(json.dumps({"config": {"model": "m5"}, "ensemble_holdout_accuracy": 0.99}))
    done = road(standin, tmp_path, "submit", str(blended / "submission.csv"), "--message", "blend of a + b")
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())
    assert row["submission_ref"] == standin.submissions[0]["ref"] and row["public_score"] is not None
    assert row["message"] == "blend of a + b" and row["holdout_accuracy"] == 0.99


def test_missing_credentials(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "status"], capture_output=True,
                          text=True, env=dict(env, HOME=str(tmp_path)))
    assert done.returncode == 1 and done.stderr.startswith("error: no Kaggle credentials")


def test_dry_run_sends_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    push = [sys.executable, str(ROOT / "scripts" / "push.py"), "run", "--dry-run", "--owner", "me",
            "--runs-dir", str(tmp_path / "runs")]
    env = dict(env, HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9")
    done = subprocess.run(push + ["--set", "holdout=0"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert sent["would_push"]["id"] == "me/digit-recognizer-kernel"
    assert sent["would_push"]["machine_shape"] == "NvidiaTeslaT4" and sent["would_push"]["enable_internet"] is False
    assert sent["kernel_args"] == ["--preset", "full", "--holdout", "0"] and not (tmp_path / "runs").exists()
    done = subprocess.run(push + ["--preset", "gpu"], capture_output=True, text=True, env=env)
    assert json.loads(done.stdout[: done.stdout.rindex("}") + 1])["kernel_args"] == ["--preset", "gpu"]
    # a bad setting stops before the bundle is built, in one line: on Kaggle it would cost a GPU session
    done = subprocess.run(push + ["--set", "holdout=0.9"], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stderr == "error: push: config: --holdout 0.9: must be in [0, 0.5)\n"
    for setting, says in (("learning_rate=-1", "--learning-rate -1.0: must be positive"),
                          ("seed=-1", "--seed -1: member k trains with seed + 1000k"), ("limit=-5", "--limit -5: ")):
        done = subprocess.run(push + ["--set", setting], capture_output=True, text=True, env=env)
        assert done.returncode == 1 and done.stderr.startswith(f"error: push: config: {says}"), done.stderr


def test_a_runs_dir_that_cannot_be_written_stops_before_the_push(tmp_path):
    (tmp_path / "file").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "run", "--owner", "me",
                           "--runs-dir", str(tmp_path / "file" / "runs")], capture_output=True, text=True,
                          env=dict(env, HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "cannot write there" in done.stderr and "--runs-dir" in done.stderr


REAL = os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY") and not os.environ.get(
    "KAGGLE_API_ENVIRONMENT")


@pytest.mark.skipif(not REAL, reason="needs real Kaggle credentials (KAGGLE_USERNAME, KAGGLE_KEY)")
def test_real_kaggle_answers_a_submission_listing():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "score", "--timeout", "30"],
                          capture_output=True, text=True, timeout=120)
    assert "401" not in done.stderr and "403" not in done.stderr
