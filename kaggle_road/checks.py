"""What must hold before a GPU session or a submission is spent: a kernel's title Kaggle takes, a submission file
Kaggle takes, and a fetched run that proves to be the push's own, made from Kaggle's data by a run that learned.
"""

import json
import pathlib
import re

from kaggle_road.client import KaggleError

TEST_ROWS = 28000  # the competition's test.csv: a submission has one row for each


def read_summary(folder: pathlib.Path) -> dict:
    """The kernel's summary.json, or {} when it is missing or not one (a failed download leaves an error body)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) and "config" in summary else {}


def check_submission(path: pathlib.Path, rows: int, what="output"):
    """A KaggleError unless `path` is a valid submission of `rows` rows."""
    import pandas as pd
    from digit_recognizer import submit
    if not path.is_file():
        missing = "a folder, not a submission file" if path.is_dir() else "no such file"
        raise KaggleError(f"{what}: {path}: {missing}")
    try:
        submit.validate_submission(pd.read_csv(path), rows, name=str(path))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:  # a failed download leaves an error page
        raise KaggleError(f"{what}: {error}") from None


def check_title(slug: str):
    """Kaggle takes a kernel's title of 5 to 50 characters and makes its slug from it: a longer one is answered
    500 (kaggle-cli PR #179), and would then be waited for as a push that got no answer."""
    if not 5 <= len(slug) <= 50 or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
        raise KaggleError(f"push: the kernel's title and slug {slug!r} must be 5 to 50 lowercase letters, digits "
                          f"and single dashes (Kaggle refuses others): shorten the id in kernel-metadata.json")


def check_run(path: pathlib.Path, bundle_hash: str):
    """A KaggleError unless the fetched run is this push's, read Kaggle's competition data, learned enough and
    wrote one row per test image: only then may a submission be spent on it."""
    summary, kept = read_summary(path.parent), f"its files are kept in {path.parent}; no submission spent"
    if not summary:
        raise KaggleError(f"output: no readable summary.json beside {path.name}; {kept}")
    if summary.get("bundle_hash") != bundle_hash:
        raise KaggleError(f"output: the files are of bundle {summary.get('bundle_hash')}, not this push's "
                          f"{bundle_hash} (an older version's?); {kept}")
    if summary.get("data_kind") != "kaggle":
        raise KaggleError(f"output: the kernel read {summary.get('data_source')}, not Kaggle's competition data; "
                          f"{kept}")
    learned = summary.get("learned") or {}
    if learned.get("refused") or not learned.get("accuracy", 0) >= learned.get("floor", 1):
        raise KaggleError(f"output: the run learned too little to submit ({learned.get('refused') or learned}); "
                          f"{kept}")
    if summary.get("files") == "incomplete":
        raise KaggleError(f"output: summary.json says the run stopped while writing its files; {kept}")
    check_submission(path, summary.get("test_rows") or TEST_ROWS)
