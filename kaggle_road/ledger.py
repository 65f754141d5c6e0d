"""The run ledger, runs/ledger.jsonl: one JSON line a run (the road writes them), read back as the latest line
of each run, shown as a table and a picture (scripts/ledger.py).
"""

import json
import pathlib
import sys


def append(path: pathlib.Path, row: dict) -> None:
    """One JSON line at the end of `path` (the run ledger, the harness's results), its folder made if need be; on
    a line of its own, even after a last line that was cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:  # appends go to the end, wherever the handle was read
        cut = False
        if handle.seek(0, 2) > 0:
            handle.seek(-1, 2)
            cut = handle.read(1) != b"\n"
        handle.write((("\n" if cut else "") + json.dumps(row) + "\n").encode())


def read(ledger: pathlib.Path, warn=lambda line: print(line, file=sys.stderr)) -> list[dict]:
    """The ledger's runs, each as its last line says (a run scored later has two); a line that is not a JSON
    object is skipped with a word to `warn`, never the reason to lose the rest."""
    rows = []
    for number, line in enumerate(ledger.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            warn(f"{ledger}: line {number} is not a JSON object: skipped (fix or remove it)")
    latest = {row.get("time", index): row for index, row in enumerate(rows)}  # a run scored later: its last line
    return list(latest.values())


def number(value):
    """A figure of the ledger as a float; None where there is none, or where it is not a number ("pending")."""
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def table(rows: list[dict]) -> str:
    head = f"{'time':17} {'commit':14} {'bundle':12} {'model':5} {'members':>7} {'epochs':>6} {'hold-out':>8} {'public':>8}"
    lines = [head, "-" * len(head)]
    for row in rows:
        config = row.get("config") or {}
        holdout, public = number(row.get("holdout_accuracy")), number(row.get("public_score"))
        lines.append(f"{row.get('time', ''):17} {row.get('commit', ''):14} {row.get('bundle_hash', ''):12} "
                     f"{config.get('model', '?'):5} {config.get('members', ''):>7} {config.get('epochs', ''):>6} "
                     f"{'' if holdout is None else f'{holdout:.5f}':>8} {'' if public is None else f'{public:.5f}':>8}")
    return "\n".join(lines)


def plot(rows: list[dict], path: pathlib.Path) -> pathlib.Path:
    from digit_recognizer.report import pyplot, save
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.8))
    runs = range(1, len(rows) + 1)
    for key, label, style in (("holdout_accuracy", "kernel hold-out", "o--"), ("public_score", "public score", "s-")):
        values = [number(row.get(key)) for row in rows]
        axis.plot([r for r, v in zip(runs, values) if v is not None], [v for v in values if v is not None],
                  style, label=label)
    axis.set_xticks(list(runs), [row.get("time", "")[:13] for row in rows], rotation=30, ha="right", fontsize=7)
    axis.set(ylabel="accuracy", title="Runs over time")
    axis.legend()
    return save(figure, path)
