"""The predictions a run leaves beside its submission: the one module that writes and reads their files.

- test_probabilities.npz: `probabilities`, the ensemble's average softmax on the test images (rows, 10), and its
  members' `families` and `seeds`. scripts/blend.py averages several runs' into one submission.
- holdout_predictions.npz: the hold-out's `rows` (their numbers in train) and `labels`, each member's `families`
  and softmax, `members` (members, rows, 10); with --pseudo also `first_round_members`. The research harness
  (experiments/) pools members of several runs from these, and writes its folds (fold-K.npz) the same way.
Numpy only: a script that reads them loads no backend.
"""

import pathlib
import zipfile

import numpy as np

from digit_recognizer import config as configuration, submit

TEST = "test_probabilities.npz"
HOLDOUT = "holdout_predictions.npz"


def write(path, **arrays) -> pathlib.Path:
    """A compressed npz, written atomically."""
    def write_to(temporary):
        with open(temporary, "wb") as handle:  # a handle: np.savez would add .npz to the temporary name
            np.savez_compressed(handle, **arrays)
    return submit.write_atomic(path, write_to)


def load(path) -> dict:
    """Every array of an npz, read at once (the file is closed again)."""
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def write_members(path, families, members, rows, labels, **extra) -> pathlib.Path:
    """Each member's softmax on `rows` (their numbers in train, with their `labels`), with the members'
    `families` and any `extra` arrays: what pooling reads, so members can be weighed, subset or pooled with other
    runs' without training again."""
    return write(path, rows=rows, labels=labels, families=np.array(families), members=np.array(members, np.float32),
                 **extra)


def families(config, indices) -> list:
    """The families of members number `indices` (those a budget left in)."""
    return [configuration.member_family(config, m) for m in indices]


def write_test(out_dir, config, result) -> pathlib.Path:
    """test_probabilities.npz of a run's ensemble (ensemble.Result)."""
    named, seeds = zip(*configuration.member_specs(config, result.member_indices))
    return write(pathlib.Path(out_dir) / TEST, probabilities=result.test_probabilities.astype(np.float32),
                 families=np.array(named), seeds=np.array(seeds))


def write_holdout(out_dir, config, result, rows, labels) -> pathlib.Path:
    """holdout_predictions.npz of a run's members. With --pseudo, `members` are the second round's and
    `first_round_members` the first's (plain members)."""
    first = result.first_round
    extra = {} if first is None else {"first_round_members": np.array(first.member_holdout_probabilities, np.float32)}
    return write_members(pathlib.Path(out_dir) / HOLDOUT, families(config, result.member_indices),
                         result.member_holdout_probabilities, rows, labels, **extra)


def read_test(path) -> dict:
    """A run's test_probabilities.npz: its probabilities (rows, 10) and its members' (family, seed), checked; a
    ValueError naming the file otherwise."""
    try:
        saved = load(path)
        run = {"probabilities": saved["probabilities"].astype(np.float64),
               "members": list(zip(saved["families"].tolist(), saved["seeds"].tolist()))}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a run's {TEST} ({type(error).__name__}: {error})") from None
    probabilities = run["probabilities"]
    if probabilities.ndim != 2 or probabilities.shape[1] != 10 or not run["members"]:
        raise ValueError(f"{path}: not a run's {TEST}: probabilities of shape {probabilities.shape} from "
                         f"{len(run['members'])} members; expected (test rows, 10) from at least one")
    if not np.isfinite(probabilities).all():
        raise ValueError(f"{path}: its probabilities are not all finite numbers; the run that wrote it failed")
    return run


def read_holdout(path):
    """(rows, labels, members) of a holdout_predictions.npz, or None where there is none or it is broken."""
    try:
        saved = load(path)
        return saved["rows"], saved["labels"], saved["members"].astype(np.float64)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
