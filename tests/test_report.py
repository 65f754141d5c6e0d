import json

import numpy as np
from conftest import script

from digit_recognizer import report
from digit_recognizer.ensemble import Result


def fake_result(holdout_probabilities, test_probabilities):
    history = {"loss": [0.5, 0.2], "accuracy": [0.9, 0.95], "val_loss": [0.3, 0.2], "val_accuracy": [0.92, 0.96],
               "learning_rate": [1e-3, 5e-4]}
    return Result(test_probabilities=test_probabilities, holdout_probabilities=holdout_probabilities, member_accuracy=[0.5],
                  ensemble_accuracy=0.5, histories=[history, history], train_seconds=1.0, images_per_second=1.0,
                  device="cpu", precision="float32")


def plots_of(folder, seed):
    """Every picture, drawn from data of `seed`: {name: PNG bytes}."""
    rng = np.random.default_rng(seed)
    labels = np.arange(20) % 10
    images = rng.random((20, 28, 28, 1)).astype(np.float32)
    result = fake_result(rng.dirichlet(np.ones(10), size=20), rng.dirichlet(np.ones(10), size=30))
    counts = {d: int(rng.integers(5, 50)) for d in range(10)}
    return {p.name: p.read_bytes() for p in report.write_plots(folder, counts, result, (images, labels))}


def test_every_picture_is_a_real_png_of_its_data(tmp_path):
    first, second = plots_of(tmp_path / "a", seed=0), plots_of(tmp_path / "b", seed=1)
    assert sorted(first) == ["confusion_matrix.png", "label_counts.png", "test_confidence.png",
                             "training_curves.png", "worst_errors.png"]
    for name, content in first.items():
        assert content[:8] == b"\x89PNG\r\n\x1a\n"
        assert 3_000 < len(content) < 1_000_000, (name, len(content))
        if name != "training_curves.png":  # the curves are the histories', the same in both
            assert content != second[name], f"{name} does not change with the data it draws"


def test_no_holdout_no_holdout_pictures(tmp_path):
    written = report.write_plots(tmp_path, {d: 1 for d in range(10)}, fake_result(None, np.full((5, 10), 0.1)), None)
    assert {p.name for p in written} == {"label_counts.png", "training_curves.png", "test_confidence.png"}


def test_confusion_counts():
    matrix = report.confusion(np.array([1, 1, 7, 3]), np.array([1, 7, 7, 3]))
    assert matrix[1, 1] == 1 and matrix[1, 7] == 1 and matrix[7, 7] == 1 and matrix.sum() == 4


def test_versions_name_the_backend():
    found = report.versions()
    assert {"python", "keras", "backend"} <= set(found)


def test_ledger_report(tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    rows = [{"time": "20261124T0100Z", "commit": "abc", "bundle_hash": "h1", "config": {"model": "bn", "members": 5,
             "epochs": 30}, "holdout_accuracy": 0.9961, "public_score": "0.99642"},
            {"time": "20261124T0200Z", "commit": "def", "bundle_hash": "h2", "config": None,
             "holdout_accuracy": None, "public_score": None}]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = script("ledger")
    assert command.main(["--ledger", str(ledger)]) == 0
    shown = capsys.readouterr()
    assert "0.99610  0.99642" in shown.out and "def" in shown.out, shown.err
    assert (tmp_path / "ledger.png").read_bytes()[:4] == b"\x89PNG"
    # a broken line is skipped with a word, never the reason to refuse the rest
    ledger.write_text('["a", "list"]\n' + json.dumps(dict(rows[0], public_score="pending")) + "\nnot json\n")
    assert command.main(["--ledger", str(ledger)]) == 0
    shown = capsys.readouterr()
    assert "line 1 is not a JSON object: skipped" in shown.err and "line 3 is not a JSON object" in shown.err
    assert "0.99610" in shown.out and "pending" not in shown.out
    ledger.write_text("not json\n")
    assert command.main(["--ledger", str(ledger)]) == 2 and "no line of it is a run's" in capsys.readouterr().err


def test_a_ledger_line_cut_short_does_not_swallow_the_next(tmp_path):
    from kaggle_road import ledger
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"time": "1", "public_score": null}\n{"time": "2", "publ')  # a run stopped mid-write
    ledger.append(path, {"time": "3", "public_score": "0.99"})
    assert [row["time"] for row in ledger.read(path, warn=lambda line: None)] == ["1", "3"]
