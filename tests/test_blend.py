import types

import numpy as np
import pandas as pd
import pytest

from conftest import script

from digit_recognizer import predictions
from kaggle_road import blend
from digit_recognizer.config import Config


def run_folder(folder, digits, seed=42, members=(0,), held=None):
    """A run's folder as the kernel leaves it: test_probabilities.npz for test images read as `digits`; with
    `held`, holdout_predictions.npz whose members read its two rows (labels 0, 1) as these digits."""
    folder.mkdir(parents=True)
    config = Config(model="bn", seed=seed)
    result = types.SimpleNamespace(test_probabilities=np.eye(10)[digits], member_indices=list(members))
    predictions.write_test(folder, config, result)
    if held is not None:
        predictions.write_members(folder / "holdout_predictions.npz", predictions.families(config, members),
                                  np.eye(10)[held], np.array([5, 9]), np.array([0, 1]))
    return folder


def test_runs_blend_weighed_by_their_members(tmp_path, capsys):
    # on the hold-out, the one member gets both rows right, the three get the second wrong
    one = run_folder(tmp_path / "a", [1, 2, 3], members=(0,), held=[[0, 1]])
    three = run_folder(tmp_path / "b" / "output", [1, 5, 5], seed=50042, members=(0, 1, 2), held=[[0, 7]] * 3)
    assert script("blend").main([str(one), str(tmp_path / "b"), "--out", str(tmp_path / "blend.csv")]) == 0
    # image 3: one member says 3, three say 5
    assert pd.read_csv(tmp_path / "blend.csv")["Label"].tolist() == [1, 5, 5]
    probabilities, runs = blend.blend([one / blend.NAME, three / blend.NAME])
    assert np.allclose(probabilities[1], (np.eye(10)[2] + 3 * np.eye(10)[5]) / 4)
    assert [len(run["members"]) for run in runs] == [1, 3]
    printed = capsys.readouterr().out
    assert "hold-out (2 rows): the runs 1.00000, 0.50000; the blend 0.50000" in printed
    assert "2 runs, 4 members" in printed


@pytest.mark.parametrize("second, message", [
    ({"digits": [1, 2, 3, 4]}, "test sets of different sizes"),
    ({"digits": [1, 2, 3], "members": (1, 0)}, "both trained a bn member with seed 42: near copies"),
    ({"digits": [], "seed": 1042}, "predicts no test images"),  # not a header-only file and a nan%
])
def test_runs_that_cannot_blend_are_refused(tmp_path, capsys, second, message):
    first = run_folder(tmp_path / "a", [1, 2, 3], members=(0,))
    other = run_folder(tmp_path / "b", **second)
    assert script("blend").main([str(first), str(other), "--out", str(tmp_path / "blend.csv")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "blend.csv").exists()


def test_no_run_a_run_given_twice_a_bad_out_and_a_broken_file_are_each_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert script("blend").main([str(tmp_path / "empty")]) == 2
    assert "no test_probabilities.npz in it" in capsys.readouterr().err
    one = run_folder(tmp_path / "a", [1, 2, 3])
    assert script("blend").main([str(one), str(one / blend.NAME)]) == 2
    assert "given twice" in capsys.readouterr().err
    assert script("blend").main([str(one), "--out", str(one / blend.NAME / "blend.csv")]) == 2  # a file is no folder
    assert "cannot write there" in capsys.readouterr().err
    (tmp_path / "broken.npz").write_text("not a zip")
    assert script("blend").main([str(tmp_path / "broken.npz")]) == 2
    assert "not a run's test_probabilities.npz" in capsys.readouterr().err
