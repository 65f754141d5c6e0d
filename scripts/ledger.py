"""The run ledger (runs/ledger.jsonl, written by scripts/push.py) as a table and a picture.

  python scripts/ledger.py [--ledger runs/ledger.jsonl] [--out runs/ledger.png]

Prints one row per run (time, commit, bundle, model, members, epochs, hold-out, public score) and plots the public
score and the kernel's hold-out accuracy of every run over time, so a gap between the two stands out.
"""

import argparse
import pathlib
import sys

from kaggle_road import ledger
from kaggle_road.client import command

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", default=str(ROOT / "runs" / "ledger.jsonl"))
    parser.add_argument("--out", default=None, help="the picture (default: ledger.png beside the ledger)")
    args = parser.parse_args(argv)
    return command(lambda: show(pathlib.Path(args.ledger), args.out))


def show(path: pathlib.Path, out):
    if not path.is_file():
        raise ValueError(f"{path}: no ledger yet; `python scripts/push.py run` writes one line per run")
    rows = ledger.read(path)
    if not rows:
        raise ValueError(f"{path}: no line of it is a run's; `python scripts/push.py run` writes one per run")
    print(ledger.table(rows))
    print(f"wrote {ledger.plot(rows, pathlib.Path(out) if out else path.with_name('ledger.png'))}")


if __name__ == "__main__":
    sys.exit(main())
