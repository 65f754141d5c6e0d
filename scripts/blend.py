"""Blends several runs into one submission: every run writes test_probabilities.npz (its ensemble's average
softmax on the test images, with each member's family and seed), and the blend weighs each run by its members,
so two Kaggle sessions of eight members make one ensemble of sixteen.

  python scripts/blend.py runs/A runs/B                  # run folders (or their .npz); writes ./submission.csv
  python scripts/blend.py runs/A runs/B --out blend.csv
  python scripts/push.py submit submission.csv --message "..."   # then submit it

Runs must predict the same test.csv and train different members: a second session needs another seed
(`python scripts/push.py run --preset gpu --set seed=50042`), or its members are near copies of the first's.
"""

import argparse
import pathlib
import sys

import numpy as np

from digit_recognizer import predictions, submit

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Blends several runs' test predictions into one submission.")
    parser.add_argument("runs", nargs="+", help=f"run folders (runs/<time>-<hash>/, an --out folder) or their {NAME}")
    parser.add_argument("--out", default="submission.csv", help="the submission to write (default: %(default)s)")
    options = parser.parse_args(argv)
    try:
        submit.writable_folder(pathlib.Path(options.out).parent, "--out")
        paths = [find(place) for place in options.runs]
        probabilities, runs = blend(paths)
        written = submit.write_submission(submit.make_submission(probabilities), options.out, len(probabilities))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    answers = probabilities.argmax(axis=1)
    for path, run in zip(paths, runs):
        agree = np.mean(run["probabilities"].argmax(axis=1) == answers)
        print(f"{path}: {len(run['members'])} member(s); its answers match the blend's on {agree:.2%} of images")
    line = holdout_line(paths)
    print(line or "hold-out: not every run held out the same rows; only the leaderboard will tell")
    print(f"wrote {written}: {len(runs)} runs, {sum(len(run['members']) for run in runs)} members")
    names = " + ".join(path.parent.name for path in paths)
    print(f"to submit it: python scripts/push.py submit {written} --message 'blend of {names}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
