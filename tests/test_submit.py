import os
import pathlib

import numpy as np
import pandas as pd
import pytest

from digit_recognizer import submit


def test_argmax_with_ids_from_one():
    frame = submit.make_submission(np.eye(10)[[3, 0, 9]])
    assert frame.to_dict("list") == {"ImageId": [1, 2, 3], "Label": [3, 0, 9]}


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"ImageId": [1, 2], "Label": [1, 2]}), "2 rows, but test.csv has 3"),
    (pd.DataFrame({"ImageId": [1, 3, 4], "Label": [1, 2, 3]}), "line 3, column ImageId: 3"),
    (pd.DataFrame({"ImageId": [1, 2, 3], "Label": [1, 12, 3]}), "line 3, column Label: 12"),
    (pd.DataFrame({"Id": [1, 2, 3], "Label": [1, 2, 3]}), "expected ImageId, Label"),
])
def test_validation_faults(frame, message):
    with pytest.raises(ValueError, match=message):
        submit.validate_submission(frame, test_rows=3)


def test_write_is_atomic(tmp_path):
    path = tmp_path / "submission.csv"
    good = np.eye(10)[[1, 2, 3]]
    submit.write_submission(good, path, test_rows=3)
    before = path.read_bytes()
    assert before.decode().splitlines() == ["ImageId,Label", "1,1", "2,2", "3,3"]

    def crash(temporary):
        pathlib.Path(temporary).write_text("ImageId,Lab")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        submit.write_atomic(path, crash)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["submission.csv"]  # no temporary file left behind
    with pytest.raises(ValueError):
        submit.write_submission(good, path, test_rows=4)
    assert path.read_bytes() == before


def test_writable_folder_is_made_or_refused_by_name(tmp_path):
    assert submit.writable_folder(tmp_path / "a" / "b").is_dir()
    assert os.listdir(tmp_path / "a" / "b") == []  # its probe file is gone
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"file/out: cannot write there .*--out"):
        submit.writable_folder(tmp_path / "file" / "out")
