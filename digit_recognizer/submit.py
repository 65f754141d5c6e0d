"""From probabilities to a validated `ImageId,Label` file, written atomically."""

import json
import os
import pathlib
import tempfile

import numpy as np
import pandas as pd


def make_submission(probabilities: np.ndarray) -> pd.DataFrame:
    """Each test image's most probable digit, as Kaggle wants it."""
    labels = np.argmax(probabilities, axis=1)
    return pd.DataFrame({"ImageId": np.arange(1, len(labels) + 1), "Label": labels.astype(np.int64)})


def validate_submission(frame: pd.DataFrame, test_rows: int, name: str = "submission") -> None:
    """What Kaggle would reject, caught before the upload: columns, row count, ids 1..N, labels 0-9."""
    if list(frame.columns) != ["ImageId", "Label"]:
        raise ValueError(f"{name}: columns are {', '.join(map(str, frame.columns))}; expected ImageId, Label")
    if len(frame) != test_rows:
        raise ValueError(f"{name}: {len(frame)} rows, but test.csv has {test_rows}; one row per test image")
    ids = pd.to_numeric(frame["ImageId"], errors="coerce")
    wrong = np.flatnonzero(ids.to_numpy() != np.arange(1, test_rows + 1))
    if len(wrong):
        row = int(wrong[0])
        raise ValueError(f"{name}: line {row + 2}, column ImageId: {frame['ImageId'].iloc[row]}; "
                         f"ids must run 1, 2, ..., {test_rows} in order")
    labels = pd.to_numeric(frame["Label"], errors="coerce")
    wrong = np.flatnonzero(~labels.isin(range(10)).to_numpy())
    if len(wrong):
        row = int(wrong[0])
        raise ValueError(f"{name}: line {row + 2}, column Label: {frame['Label'].iloc[row]} is not a digit 0-9")


def writable_folder(folder, flag="--out") -> pathlib.Path:
    """Makes `folder` and writes a file there before anything trains: a bad --out fails in a second, not after
    the hour of training whose submission it was to hold."""
    folder = pathlib.Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise ValueError(f"{folder}: cannot write there ({error.strerror or error}); "
                         f"give a folder you can write to with {flag}") from None
    return folder


_WRITING = set()  # temporary files being written now


def remove_unfinished() -> None:
    """Removes the temporary files being written now: what an interrupt handler does before it exits."""
    for temporary in list(_WRITING):
        if os.path.exists(temporary):
            os.remove(temporary)


def write_atomic(path, write) -> pathlib.Path:
    """Calls write(temporary path), then renames it over `path`: a crash leaves the old file whole."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    _WRITING.add(temporary)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes the file private; a submission is not
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
        _WRITING.discard(temporary)
    return path


def write_text(path, text: str) -> pathlib.Path:
    return write_atomic(path, lambda temporary: pathlib.Path(temporary).write_text(text))


def write_json(path, value) -> pathlib.Path:
    return write_text(path, json.dumps(value, indent=1))


def write_submission(probabilities: np.ndarray, path, test_rows: int | None = None) -> pathlib.Path:
    """submission.csv of the ensemble's `probabilities` (test rows, 10), checked (one row per test image, where
    `test_rows` says how many there are), then written atomically."""
    frame = make_submission(probabilities)
    validate_submission(frame, len(probabilities) if test_rows is None else test_rows)
    return write_atomic(path, lambda temporary: frame.to_csv(temporary, index=False))
