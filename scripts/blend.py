"""Blends several runs into one submission, each run weighed by its members (kaggle_road/blend.py).

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

from digit_recognizer import submit
from kaggle_road.blend import NAME, blend, find, holdout_line
from kaggle_road.client import command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Blends several runs' test predictions into one submission.")
    parser.add_argument("runs", nargs="+", help=f"run folders (runs/<time>-<hash>/, an --out folder) or their {NAME}")
    parser.add_argument("--out", default="submission.csv", help="the submission to write (default: %(default)s)")
    options = parser.parse_args(argv)
    return command(lambda: write_blend(options.runs, options.out))


def write_blend(places: list, out: str):
    submit.writable_folder(pathlib.Path(out).parent, "--out")
    paths = [find(place) for place in places]
    probabilities, runs = blend(paths)
    written = submit.write_submission(probabilities, out)
    answers = probabilities.argmax(axis=1)
    for path, run in zip(paths, runs):
        agree = np.mean(run["probabilities"].argmax(axis=1) == answers)
        print(f"{path}: {len(run['members'])} member(s); its answers match the blend's on {agree:.2%} of images")
    line = holdout_line(paths)
    print(line or "hold-out: not every run held out the same rows; only the leaderboard will tell")
    print(f"wrote {written}: {len(runs)} runs, {sum(len(run['members']) for run in runs)} members")
    names = " + ".join(path.parent.name for path in paths)
    print(f"to submit it: python scripts/push.py submit {written} --message 'blend of {names}'")


if __name__ == "__main__":
    sys.exit(main())
