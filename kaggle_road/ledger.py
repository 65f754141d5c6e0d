"""The run ledger, runs/ledger.jsonl: one JSON line a run (the road writes them), read back as the latest line
of each run, shown as a table and a picture (scripts/ledger.py).
"""

import json
import pathlib


def append(path: pathlib.Path, row: dict) -> None:
    """One JSON line at the end of `path` (the run ledger, the harness's results), its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def read(ledger: pathlib.Path) -> list[dict]:
    rows = []
    for number, line in enumerate(ledger.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{ledger}: line {number} is not JSON; remove or fix that line") from None
    latest = {row.get("time", index): row for index, row in enumerate(rows)}  # a run scored later: its last line
    return list(latest.values())


def number(value):
    return None if value in (None, "") else float(value)


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
