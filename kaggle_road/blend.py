"""Several runs, one ensemble: every run writes test_probabilities.npz (its ensemble's average softmax on the
test images, with each member's family and seed), and the blend weighs each run by its members, so two Kaggle
sessions of eight members make one ensemble of sixteen (scripts/blend.py; push.py --sessions).

Runs must predict the same test.csv and train different members: a second session needs another seed
(`python scripts/push.py run --preset gpu --set seed=50042`), or its members are near copies of the first's.
"""

import pathlib

import numpy as np

from digit_recognizer import predictions

NAME = predictions.TEST


def find(place: str) -> pathlib.Path:
    """A run's test_probabilities.npz: the file itself, or the one file of that name under a run's folder."""
    path = pathlib.Path(place)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"{place}: no such file or folder")
    found = sorted(path.rglob(NAME))
    if len(found) != 1:
        raise ValueError(f"{place}: {len(found)} {NAME} files in it; name the one to blend" if found else
                         f"{place}: no {NAME} in it; fetch a run's files with `python scripts/push.py output`")
    return found[0]


def blend(paths: list) -> tuple[np.ndarray, list]:
    """The members' average over all the runs at `paths` (each run's average weighed by its members), and the
    runs."""
    resolved = [path.resolve() for path in paths]
    for number, path in enumerate(resolved):
        if path in resolved[:number]:
            raise ValueError(f"{paths[number]}: given twice; each run counts once")
    runs = [predictions.read_test(path) for path in paths]
    if any(len(run["probabilities"]) == 0 for run in runs):
        empty = next(path for path, run in zip(paths, runs) if len(run["probabilities"]) == 0)
        raise ValueError(f"{empty}: predicts no test images; blend runs that read a test.csv")
    sizes = {len(run["probabilities"]) for run in runs}
    if len(sizes) > 1:
        rows = ", ".join(f"{path}: {len(run['probabilities'])}" for path, run in zip(paths, runs))
        raise ValueError(f"the runs predict test sets of different sizes ({rows} rows); blend runs on one test.csv")
    seen = {}
    for path, run in zip(paths, runs):
        for family, seed in run["members"]:
            if (family, seed) in seen:
                raise ValueError(f"{seen[family, seed]} and {path} both trained a {family} member with seed {seed}: "
                                 f"near copies; train the second run with another seed (--seed 50042)")
            seen[family, seed] = path
    total = sum(len(run["members"]) for run in runs)
    return sum(run["probabilities"] * len(run["members"]) for run in runs) / total, runs


def holdout_line(paths: list) -> str | None:
    """Each run's hold-out accuracy and the blend's, where every run left holdout_predictions.npz beside its
    test predictions for the same rows (the same --holdout-seed); else None."""
    held = [predictions.read_holdout(path.with_name(predictions.HOLDOUT)) for path in paths]
    if any(found is None for found in held):
        return None
    if any(not np.array_equal(rows, held[0][0]) for rows, _, _ in held):
        return None
    labels = held[0][1]

    def accuracy(members):
        return f"{np.mean(members.mean(axis=0).argmax(axis=1) == labels):.5f}"
    runs = ", ".join(accuracy(members) for _, _, members in held)
    return (f"hold-out ({len(labels)} rows): the runs {runs}; the blend "
            f"{accuracy(np.concatenate([members for _, _, members in held]))}")
