"""The road against Kaggle as it is today, through the stand-in: today's credentials, outages mid-wait, answers
the client reads oddly, and the road's commands given bad input as a new user would."""

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, interruptible, offline, road

from digit_recognizer import pipeline
from kaggle_road import checks, client, steps

NO_KEY = {"KAGGLE_USERNAME": None, "KAGGLE_KEY": None}


def ledger_rows(tmp_path) -> list:
    return [json.loads(line) for line in (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("where", ["access_token file", "KAGGLE_API_TOKEN"])
def test_the_token_from_kaggles_settings_page_pushes_waits_fetches_and_submits(standin, tmp_path, where):
    env = dict(NO_KEY)
    if where == "KAGGLE_API_TOKEN":
        env["KAGGLE_API_TOKEN"] = standin.token
    else:
        (tmp_path / ".kaggle").mkdir()
        (tmp_path / ".kaggle" / "access_token").write_text(standin.token + "\n")
    done = road(standin, tmp_path, "run", "--fast", env=env)  # no --owner: the token names its user
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "pushed tester/digit-recognizer-kernel version 1" in done.stdout
    assert ledger_rows(tmp_path)[0]["outcome"] == "scored" and len(standin.submissions) == 1


def test_no_credentials_names_the_ways_kaggle_offers_today(tmp_path):
    done = offline(tmp_path, "status")
    assert done.returncode == 2 and done.stderr == f"error: {client.NO_CREDENTIALS}\n"
    assert "kaggle auth login" in done.stderr and "access_token" in done.stderr and "kaggle.json" in done.stderr


def test_a_token_checked_with_no_network_is_one_line(tmp_path):
    done = offline(tmp_path, "status", "--retries", "2", "--backoff", "0.01", "--version", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1  # no credentials: before any network
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), "status", "--retries", "2", "--backoff",
                           "0.01"], capture_output=True, text=True, timeout=120,
                          env=dict(env, HOME=str(tmp_path), KAGGLE_API_TOKEN="a-token-from-the-settings-page",
                                   HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.startswith("error: credentials: no answer after 2 tries") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("seconds, waits", [
    ("1.5", []),  # 1.5 s of 503s against the tests' short retries: several polls fail, the wait goes on
    pytest.param("40", ["--retries", "4", "--backoff", "2", "--poll", "5"], marks=pytest.mark.slow),  # the client's
])
def test_a_status_outage_inside_a_wait_is_waited_out(standin, tmp_path, seconds, waits):
    standin.faults["outage.GetKernelSessionStatus"] = seconds
    done = road(standin, tmp_path, "run", "--fast", *waits)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tester/digit-recognizer-kernel/1: not read (status: HTTP 503 after" in done.stdout
    assert ledger_rows(tmp_path)[0]["outcome"] == "scored"


@pytest.mark.parametrize("sessions", [1, 2])
def test_a_push_answered_without_a_version_number_is_pushed_once(standin, tmp_path, sessions):
    standin.faults["no_version"] = "1"  # the client reads the missing number as 0
    done = road(standin, tmp_path, "run", "--fast", "--sessions", str(sessions))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(standin.runs) == sessions and all(len(runs) == 1 for runs in standin.runs.values())
    assert "push: answered without a version, but version 1 of tester/digit-recognizer-kernel" in done.stdout
    assert len(standin.submissions) == 1


def test_a_failed_read_of_the_days_limits_does_not_stop_the_road(standin, tmp_path):
    standin.faults["GetSubmissionLimits"] = "500"
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "the day's submission limits could not be read (limits: HTTP 500 after 2 tries" in done.stdout
    assert "submissions left today not known" in done.stdout and len(standin.submissions) == 1


def test_an_expired_output_link_is_listed_again(standin, tmp_path):
    standin.faults["files"] = "403x1"  # Kaggle's file links are signed and expire
    done = road(standin, tmp_path, "run", "--fast")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "output: a file link answered 403 (Kaggle's links expire); listing the files again" in done.stdout
    assert ledger_rows(tmp_path)[0]["outcome"] == "scored"


@pytest.mark.parametrize("slug, sessions", [("a-title-of-fifty-one-characters-is-one-too-many-xxx", 1),
                                            ("a-title-of-forty-nine-characters-fits-alone-xxxxx", 2)])
def test_a_title_kaggle_would_refuse_is_refused_before_any_work(standin, tmp_path, monkeypatch, slug, sessions):
    metadata = json.loads(steps.METADATA.read_text())
    (tmp_path / "kernel-metadata.json").write_text(json.dumps(dict(metadata, id=f"tester/{slug}")))
    monkeypatch.setattr(steps, "METADATA", tmp_path / "kernel-metadata.json")
    done = road(standin, tmp_path, "run", "--fast", "--sessions", str(sessions))
    assert done.returncode == 2 and "must be 5 to 50 lowercase letters" in done.stderr, done.stderr
    assert standin.runs == {} and not (tmp_path / "runs").exists()


def test_cpu_sessions_push_kernels_of_their_own(tmp_path):
    done = offline(tmp_path, "run", "--dry-run", "--owner", "me", "--preset", "cpu")
    sent = json.loads(done.stdout[: done.stdout.rindex("}") + 1])["would_push"]
    assert sent["id"] == "me/digit-recognizer-kernel-cpu" and sent["enable_gpu"] is False
    assert "wait up to 10.5 hours" in done.stdout  # the 540 minutes it may train, the kernel's 30, an hour's queue


def test_submit_checks_a_file_against_the_competition_whatever_stands_beside_it(standin, tmp_path):
    run = tmp_path / "demo-run"
    run.mkdir()
    pd.DataFrame({"ImageId": range(1, 1001), "Label": 3}).to_csv(run / "submission.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"config": {}, "test_rows": 1000}))  # a demo-sample run's
    for path, says in ((run / "submission.csv", "1000 rows, but test.csv has 28000"),
                       (tmp_path / "absent.csv", "absent.csv: no such file"), (run, "a folder, not a submission")):
        done = road(standin, tmp_path, "submit", str(path))
        assert done.returncode == 2 and done.stderr.startswith("error: submit: ") and says in done.stderr
    assert standin.submissions == [] and not (tmp_path / "runs" / "ledger.jsonl").exists()


@pytest.mark.parametrize("plan", ["not json", "{}", "[1, 2]"])
def test_collect_of_a_folder_without_a_plan_it_wrote_is_one_line(standin, tmp_path, plan):
    (tmp_path / "runs" / "x-sessions").mkdir(parents=True)
    (tmp_path / "runs" / "x-sessions" / "plan.json").write_text(plan)
    done = road(standin, tmp_path, "collect", str(tmp_path / "runs" / "x-sessions"))
    assert done.returncode == 2 and done.stderr.startswith("error: collect: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and standin.submissions == []


def test_ctrl_c_while_a_run_waits_says_what_keeps_running_and_records_it(standin, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), **standin.environment())
    running = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "push.py"), "run", "--fast", "--runs-dir",
                                str(tmp_path / "runs"), "--poll", "5"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    for line in running.stdout:
        if "tester/digit-recognizer-kernel/1: " in line:  # waiting: the next read is five seconds off
            running.send_signal(signal.SIGINT)
            break
    _, error = running.communicate(timeout=60)
    assert running.returncode == 130 and error.count("\n") == 1 and standin.submissions == []
    assert error.startswith("interrupted: tester/digit-recognizer-kernel/1 keeps running on Kaggle (not cancelled)")
    assert ledger_rows(tmp_path)[0]["outcome"].startswith("interrupted: tester/digit-recognizer-kernel/1 keeps")


def test_files_stopped_mid_write_are_never_submitted(tmp_path):
    """A run stopped after its submission.csv but before its summary.json leaves a folder that says so."""
    summary = {"config": {}, "bundle_hash": "abcdefabcdef", "data_kind": "kaggle", "data_source": "kaggle: /in",
               "test_rows": 3, "learned": {"accuracy": 0.9, "on": "the hold-out", "floor": 0.5, "refused": None}}

    def write_then_stop():
        pd.DataFrame({"ImageId": [1, 2, 3], "Label": 7}).to_csv(tmp_path / "submission.csv", index=False)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.publish(tmp_path, summary, write_then_stop)
    with pytest.raises(client.KaggleError, match="summary.json says the run stopped while writing its files"):
        checks.check_run(tmp_path / "submission.csv", "abcdefabcdef")
    pipeline.publish(tmp_path, summary, lambda: None)  # the whole set: submitted
    checks.check_run(tmp_path / "submission.csv", "abcdefabcdef")


def test_ctrl_c_while_the_backend_loads_says_so():
    """kernel.py's Ctrl-C handler, called while the backend's start-up lines go to a scratch file (as when Ctrl-C
    comes during its import): its one line still reaches the user, and it exits 130."""
    script = ("import runpy, signal\n"
              "from digit_recognizer import quiet\n"
              f"handler = runpy.run_path({str(ROOT / 'kernel.py')!r})['interrupted']\n"
              "with quiet.start_up_hidden():\n"
              "    handler(signal.SIGINT, None)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 130 and done.stderr == "interrupted: stopped before the end; no file is left " \
                                                     "half-written\n", done.stderr
