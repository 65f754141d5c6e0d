"""The road to Kaggle, run through the stand-in of Kaggle's API with the real `kaggle` package."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, interruptible, offline, road

from digit_recognizer.config import PRESETS
from kaggle_road import bundle, checks

TINY = ["--epochs", "1", "--min-steps", "0", "--verbose", "0", "--min-accuracy", "0"]  # plumbing, not learning


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


@pytest.mark.slow
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


def kaggle_session(bundle_path, root, env=()):
    """The bundle as Kaggle runs it: no arguments, KAGGLE_KERNEL_RUN_TYPE set, a fresh working folder as the
    current one, the data (if any) under the input root."""
    (root / "working").mkdir(parents=True)
    clean = {k: v for k, v in os.environ.items() if k != "DIGIT_RECOGNIZER_DATA"}
    return subprocess.run([sys.executable, str(bundle_path)], cwd=root / "working", capture_output=True, text=True,
                          timeout=300, env=dict(clean, KAGGLE_KERNEL_RUN_TYPE="Batch", PYTHONPATH="",
                                                DIGIT_RECOGNIZER_KAGGLE_INPUT=str(root / "input"), **dict(env)))


@pytest.mark.slow
def test_the_bundle_runs_as_kaggle_runs_it(competition_dir, tmp_path):
    built, digest = bundle.build(["--fast", *TINY, "--no-plots"], tmp_path / "kernel.py")
    mounted = tmp_path / "kaggle" / "input" / "digit-recognizer"
    mounted.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        (mounted / name).symlink_to(competition_dir / name)
    done = kaggle_session(built, tmp_path / "kaggle")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GPUs: none" in done.stdout and "a Kaggle session stops at 12 hours" in done.stdout
    working = tmp_path / "kaggle" / "working"
    summary = json.loads((working / "summary.json").read_text())
    assert summary["data_kind"] == "kaggle" and summary["bundle_hash"] == digest
    assert summary["config"]["budget_minutes"] == 12 * 60 - 30
    checks.check_run(working / "submission.csv", digest)  # what push.py checks before it submits


@pytest.mark.parametrize("change, says", [
    ({"bundle_hash": "0123456789ab"}, "the files are of bundle 0123456789ab, not this push's abcdefabcdef"),
    ({"data_kind": "sample", "data_source": "demo sample"}, "the kernel read demo sample, not Kaggle's competition"),
    ({"learned": {"accuracy": 0.11, "on": "the hold-out", "floor": 0.5, "refused": None}}, "learned too little"),
    ({"learned": {"accuracy": 0.99, "on": "the hold-out", "floor": 0.5, "refused": "NaN"}}, "learned too little"),
    ({"test_rows": 28000}, "40 rows, but test.csv has 28000"),
])
def test_a_fetched_run_is_submitted_only_if_it_is_this_pushs_and_learned(tmp_path, change, says):
    summary = {"config": {}, "bundle_hash": "abcdefabcdef", "data_kind": "kaggle", "data_source": "kaggle: /in",
               "test_rows": 40, "learned": {"accuracy": 0.9, "on": "the hold-out", "floor": 0.5, "refused": None}}
    (tmp_path / "submission.csv").write_text(all_sevens())
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    checks.check_run(tmp_path / "submission.csv", "abcdefabcdef")
    (tmp_path / "summary.json").write_text(json.dumps(dict(summary, **change)))
    with pytest.raises(checks.KaggleError, match="^output: ") as refused:
        checks.check_run(tmp_path / "submission.csv", "abcdefabcdef")
    assert says in str(refused.value) and (tmp_path / "submission.csv").exists()


@pytest.mark.slow
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


def stopped_bundle(competition_dir, tmp_path, signal_number) -> tuple:
    """A bundle sent `signal_number` in its second epoch, its --out holding an older run's submission.csv: its
    exit code, its stderr, and what it left in its temporary folder."""
    built, _ = bundle.build(["--fast"], tmp_path / "kernel.py")
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    (out / "submission.csv").write_text("ImageId,Label\n1,7\n")
    command = [sys.executable, "-u", str(built), *TINY, "--epochs", "200", "--verbose", "2",
               "--data-dir", str(competition_dir), "--out", str(out)]
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=""), preexec_fn=interruptible)
    for line in running.stdout:
        if line.startswith("Epoch 2/"):
            assert list(scratch.glob("digit_recognizer-*.zip"))  # the package, unpacked while it runs
            running.send_signal(signal_number)
            break
    _, stderr = running.communicate(timeout=120)
    assert sorted(p.name for p in out.iterdir()) == ["submission.csv"]  # no half-written file beside it
    assert (out / "submission.csv").read_text() == "ImageId,Label\n1,7\n"  # the older run's, whole
    return running.returncode, stderr, list(scratch.iterdir())


@pytest.mark.slow
def test_a_bundle_killed_with_sigterm_removes_its_zip(competition_dir, tmp_path):
    returncode, _, left = stopped_bundle(competition_dir, tmp_path, signal.SIGTERM)
    assert returncode == 143 and not left


@pytest.mark.slow
def test_ctrl_c_is_one_line_130_and_leaves_no_files_behind(competition_dir, tmp_path):
    """kernel.py's Ctrl-C handler exits at once, without the exit handlers: it removes the package itself."""
    returncode, stderr, left = stopped_bundle(competition_dir, tmp_path, signal.SIGINT)
    assert returncode == 130 and not left and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.splitlines()[-1].startswith("interrupted: ") and len(stderr.splitlines()) == 1, stderr[-2000:]


def all_sevens(rows=40) -> str:
    return pd.DataFrame({"ImageId": range(1, rows + 1), "Label": 7}).to_csv(index=False)


@pytest.mark.parametrize("kernel", ["fake", pytest.param("real", marks=pytest.mark.slow)])
def test_whole_road_through_the_standin(standin, tmp_path, kernel):
    standin.fake = kernel == "fake"
    # version 1 finished long ago with a file of all 7s: read without a version, Kaggle answers for it while
    # version 2 runs (kaggle-cli #1200)
    standin.finished_version("tester/digit-recognizer-kernel", {"submission.csv": all_sevens()})
    standin.faults.update(GetKernelSessionStatus="429x1", **{"GetSubmission": "404x1", "empty_score": "2"})
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "5 submission(s) left today" in done.stdout
    assert "pushed tester/digit-recognizer-kernel version 2" in done.stdout
    assert "tester/digit-recognizer-kernel/2: RUNNING" in done.stdout or "/2: QUEUED" in done.stdout
    ledger = [json.loads(line) for line in (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 1 and ledger[0]["version"] == 2 and ledger[0]["outcome"] == "scored"
    score = float(ledger[0]["public_score"])  # version 1's sevens would score about 0.1
    assert 0.5 < score <= 1.0 and f"public score {ledger[0]['public_score']}" in done.stdout
    assert ledger[0]["config"]["model"] == PRESETS["fast"].model and ledger[0]["holdout_accuracy"] is not None
    submission = next((tmp_path / "runs").rglob("submission.csv"))
    assert len(pd.read_csv(submission)) == 40 and submission.read_text() != all_sevens()
    assert standin.submissions[0]["description"] == f"{ledger[0]['time']} v2 commit {ledger[0]['commit']} bundle " \
                                                    f"{ledger[0]['bundle_hash']}"


@pytest.mark.parametrize("fault, message", [
    ({"SaveKernel": "401"}, "push: 401, credentials rejected"),
    # a 403 says what was refused, call by call: rules not accepted show on a push as an invalid source
    ({"SaveKernel": "403"}, "push: 403, forbidden: the credentials' user may not write this kernel: --owner"),
    ({"GetSubmissionLimits": "403"}, "limits: 403, forbidden: accept the competition rules at https://www.kaggle"),
    ({"SaveKernel": "404"}, "push: 404, not found"),
    ({"SaveKernel": "500"}, "push: HTTP 500, which Kaggle can answer after acting, and no version 1 of"),
    ({"SaveKernel": "429"}, "push: HTTP 429 after 2 tries"),
    ({"save_error": "Notebook not found"}, "push: Kaggle refused the kernel: Notebook not found"),
])
def test_api_faults_give_one_line_and_nonzero_exit(standin, tmp_path, fault, message):
    standin.faults.update(fault)
    done = road(standin, tmp_path, "run", "--fast", "--grace", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr


def test_slow_answers_time_out(standin, tmp_path):
    standin.faults.update(slow="2")
    done = road(standin, tmp_path, "status", "--http-timeout", "0.5")
    assert done.returncode == 2 and "status: no answer after 2 tries" in done.stderr


def test_a_push_that_times_out_is_not_sent_again(standin, tmp_path):
    standin.faults["slow.SaveKernel"] = "1.2"  # the kernel still starts, after the client gave up
    done = road(standin, tmp_path, "run", "--fast", "--http-timeout", "0.5")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(standin.runs["tester/digit-recognizer-kernel"]) == 1  # one GPU session, not four
    assert "push: no answer (ReadTimeout), but version 1 of tester/digit-recognizer-kernel now exists" in done.stdout
    assert json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())["public_score"] is not None


def test_a_push_answered_502_after_it_started_a_run_is_not_sent_again(standin, tmp_path):
    standin.finished_version("tester/digit-recognizer-kernel", {"submission.csv": all_sevens()})
    standin.faults.update({"after.SaveKernel": "502x1", "no_team": "1"})  # no limits known: the run goes on
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(standin.runs["tester/digit-recognizer-kernel"]) == 2  # the old version and one new session
    assert "submissions left today not known" in done.stdout
    assert "push: HTTP 502, which Kaggle can answer after acting, but version 2 of " in done.stdout
    row = json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())
    assert row["version"] == 2 and float(row["public_score"]) > 0.5


def test_a_push_that_times_out_and_starts_nothing_says_so(standin, tmp_path):
    standin.faults.update({"slow.SaveKernel": "1.5", "save_error": "refused late"})  # nothing starts
    done = road(standin, tmp_path, "push", "--http-timeout", "0.5", "--grace", "2")
    assert done.returncode == 2 and standin.runs == {}
    assert "no version 1 of tester/digit-recognizer-kernel appeared within 2 s; not sent again" in done.stderr


def test_no_submission_left_today_spends_no_gpu_session(standin, tmp_path):
    standin.daily = 1  # and it is spent: a limit of all zeros would mean "not on a team yet", not "none left"
    standin.submissions.append({"ref": 1, "description": "earlier today", "content": b"", "created": time.time()})
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 2 and standin.runs == {} and "Traceback" not in done.stderr
    assert done.stderr == "error: run: no submission left today on digit-recognizer; nothing pushed, no GPU time " \
                          "spent: run again tomorrow (Kaggle's day ends at 00:00 UTC)\n"
    path = tmp_path / "submission.csv"
    path.write_text(all_sevens(28000))
    done = road(standin, tmp_path, "submit", str(path))
    assert done.returncode == 2 and "submit: no submission left today" in done.stderr
    assert len(standin.submissions) == 1


def test_a_push_without_the_competitions_data_is_not_submitted(standin, tmp_path):
    standin.faults["invalid_sources"] = "1"  # rules not accepted: the push succeeds, the kernel gets no data
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 2 and standin.submissions == []
    assert "push: version 1 started without the competition's data (Kaggle listed digit-recognizer as an invalid " \
           "source): accept the rules at https://www.kaggle.com/competitions/digit-recognizer/rules" in done.stderr
    row = json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())
    assert row["version"] == 1 and row["outcome"].startswith("push: version 1 started without")
    run = standin.runs["tester/digit-recognizer-kernel"][0]
    for _ in range(600):  # the kernel itself stops at once, in one line: no demo sample on Kaggle
        if run.status not in ("QUEUED", "RUNNING"):
            break
        time.sleep(0.1)
    assert run.status == "ERROR" and "the demo sample is never used on Kaggle" in run.failure
    assert "on Kaggle, but no train.csv and test.csv under" in run.failure and run.log.count("error: ") == 1
    assert list((run.folder / "working").iterdir()) == []  # nothing written, nothing to submit


def test_a_kernel_that_learned_too_little_spends_no_submission(standin, tmp_path):
    # the fake kernel's centroids read about 0.75 of the hold-out: under this floor, as a diverged run is under 0.5
    done = road(standin, tmp_path, "run", "--fast", "--set", "min_accuracy=0.99")
    assert done.returncode == 2 and standin.submissions == []
    assert "kernel ended ERROR: error: accuracy " in done.stderr and "is below --min-accuracy 0.99" in done.stderr
    assert json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())["outcome"].startswith("kernel ended ERROR")


def test_a_submission_answered_502_after_it_was_made_is_not_sent_again(standin, tmp_path):
    standin.faults["after.CreateSubmission"] = "502x1"
    path = tmp_path / "submission.csv"
    path.write_text(all_sevens(28000))
    done = road(standin, tmp_path, "submit", str(path), "--message", "sevens, once")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(standin.submissions) == 1
    ref = standin.submissions[0]["ref"]
    assert f"which Kaggle can answer after acting, but Kaggle lists it as {ref}: not sent again" in done.stdout


def test_a_submission_that_times_out_is_found_not_sent_again(standin, tmp_path):
    standin.faults["slow.CreateSubmission"] = "1.5"
    path = tmp_path / "submission.csv"
    pd.DataFrame({"ImageId": range(1, 28001), "Label": 1}).to_csv(path, index=False)
    done = road(standin, tmp_path, "submit", str(path), "--http-timeout", "0.8", "--message", "try 1")
    assert len(standin.submissions) == 1, done.stderr
    assert f"Kaggle lists it as {standin.submissions[0]['ref']}: not sent again" in done.stdout


def test_a_score_that_fails_after_the_submit_leaves_its_ref_for_later(standin, tmp_path):
    standin.faults["GetSubmission"] = "500"
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 2 and "score: HTTP 500" in done.stderr
    row = json.loads((tmp_path / "runs" / "ledger.jsonl").read_text())
    assert row["submission_ref"] == standin.submissions[0]["ref"] and row["public_score"] is None
    assert row["outcome"].startswith("score: HTTP 500")
    del standin.faults["GetSubmission"]
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
    done = offline(tmp_path, "run", "--fast", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert done.stdout == ""  # nothing bundled, no login help


def test_crashing_kernel_is_reported_and_recorded(standin, tmp_path):
    standin.faults.update(crash="1")
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 2 and "kernel ended ERROR: RuntimeError: injected crash" in done.stderr
    ledger = (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 1 and json.loads(ledger[0])["public_score"] is None


def test_failed_output_download_is_caught(standin, tmp_path):
    # kaggle 2.2.5 raises on the 500; earlier 2.2.x clients wrote the error body into the file (next test)
    standin.faults.update(files="500")
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 2 and "error: output: " in done.stderr, done.stderr[-2000:]
    assert len((tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()) == 1
    assert standin.submissions == []


def test_an_error_page_saved_as_the_submission_is_caught(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text('{"code": 500, "message": "injected fault"}')
    with pytest.raises(checks.KaggleError, match="^output: "):
        checks.check_submission(path, 40)
    assert path.exists()  # what came down is kept, to look at


def test_failed_upload_is_an_error_not_a_silent_exit(standin, tmp_path):
    standin.faults.update(upload="400")
    path = tmp_path / "submission.csv"
    pd.DataFrame({"ImageId": range(1, 28001), "Label": 1}).to_csv(path, index=False)
    done = road(standin, tmp_path, "submit", str(path))
    assert done.returncode == 2 and "submit: Kaggle did not take the file: Could not submit" in done.stderr
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
    done = offline(tmp_path, "status")
    assert done.returncode == 2 and done.stderr.startswith("error: no Kaggle credentials")


def test_dry_run_sends_nothing(tmp_path):
    push = ["run", "--dry-run", "--owner", "me", "--runs-dir", str(tmp_path / "runs")]
    done = offline(tmp_path, *push, "--set", "holdout=0")
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert sent["would_push"]["id"] == "me/digit-recognizer-kernel"
    assert sent["would_push"]["machine_shape"] == "NvidiaTeslaT4" and sent["would_push"]["enable_internet"] is False
    assert sent["kernel_args"] == ["--preset", "full", "--holdout", "0"] and not (tmp_path / "runs").exists()
    done = offline(tmp_path, *push, "--preset", "gpu")
    assert json.loads(done.stdout[: done.stdout.rindex("}") + 1])["kernel_args"] == ["--preset", "gpu"]
    done = offline(tmp_path, *push, "--preset", "cpu")  # a CPU session: no GPU asked, none of the quota spent
    sent = json.loads(done.stdout[: done.stdout.rindex("}") + 1])["would_push"]
    assert sent["enable_gpu"] is False and "machine_shape" not in sent
    # a bad setting stops before the bundle is built, in one line: on Kaggle it would cost a GPU session
    done = offline(tmp_path, *push, "--set", "holdout=0.9")
    assert done.returncode == 2 and done.stderr == "error: push: config: --holdout 0.9: must be in [0, 0.5)\n"
    for setting, says in (("learning_rate=-1", "--learning-rate -1.0: must be positive"),
                          ("seed=-1", "--seed -1: member k trains with seed + 1000k"), ("limit=-5", "--limit -5: ")):
        done = offline(tmp_path, *push, "--set", setting)
        assert done.returncode == 2 and done.stderr.startswith(f"error: push: config: {says}"), done.stderr


def test_a_runs_dir_that_cannot_be_written_stops_before_the_push(tmp_path):
    (tmp_path / "file").write_text("")
    done = offline(tmp_path, "run", "--owner", "me", "--runs-dir", str(tmp_path / "file" / "runs"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "cannot write there" in done.stderr and "--runs-dir" in done.stderr


REAL = os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY") and not os.environ.get(
    "KAGGLE_API_ENVIRONMENT")


@pytest.mark.skipif(not REAL, reason="needs real Kaggle credentials (KAGGLE_USERNAME, KAGGLE_KEY)")
def test_real_kaggle_answers_a_submission_listing():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "score", "--timeout", "30"],
                          capture_output=True, text=True, timeout=120)
    # a score, or the one line of an account that never submitted: anything else is a fault of the road
    assert done.returncode == 0 or done.stderr == "error: score: no submission on digit-recognizer\n", done.stderr
