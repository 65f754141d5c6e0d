"""What a run shows a person: its pictures in the output folder (matplotlib's Agg backend: no display), and the
versions and bundle that pipeline.py's summary.json records.

Files: label_counts.png, training_curves.png, confusion_matrix.png, worst_errors.png, test_confidence.png.
"""

import os
import pathlib
import platform
import sys

import numpy as np


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: Kaggle and CI have no display
    import matplotlib.pyplot as plt
    return plt


def save(figure, path: pathlib.Path) -> pathlib.Path:
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot().close(figure)
    return path


def label_counts(counts: dict, path):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.bar(list(counts), list(counts.values()), color="#4c72b0")
    axis.set(xlabel="digit", ylabel="training rows", title="Label balance", xticks=list(counts))
    return save(figure, path)


def training_curves(histories: list, path):
    """Loss and error rate (1 - accuracy) per epoch on log scales, so the first epoch's high error does not
    squash the later ones; markers, so a one-epoch run shows its point."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    curves = {"loss": np.asarray,
              "accuracy": lambda accuracy: np.maximum(1 - np.asarray(accuracy), 1e-4)}  # log scale: no zero error
    for member, history in enumerate(histories, 1):
        epochs = np.arange(1, len(history["loss"]) + 1)
        for axis, (metric, value) in zip(axes[:2], curves.items()):
            line, = axis.plot(epochs, value(history[metric]), "o-", markersize=3, label=f"member {member} train")
            if f"val_{metric}" in history:
                axis.plot(epochs, value(history[f"val_{metric}"]), "s--", markersize=3, color=line.get_color(),
                          label=f"member {member} held out")
        if "learning_rate" in history:
            axes[2].plot(epochs, history["learning_rate"], "o-", markersize=3, label=f"member {member}")
    from matplotlib.ticker import MaxNLocator
    for axis, title in zip(axes, ("loss", "error rate (1 - accuracy)", "learning rate (at epoch start)")):
        axis.set(xlabel="epoch", title=title, yscale="log")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7)
    return save(figure, path)


def confusion(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    matrix = np.zeros((10, 10), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def confusion_matrix(labels, probabilities, path):
    plt = pyplot()
    matrix = confusion(labels, probabilities.argmax(axis=1))
    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.imshow(np.log1p(matrix), cmap="Blues")
    for (true, guess), count in np.ndenumerate(matrix):
        if count:
            axis.text(guess, true, count, ha="center", va="center", fontsize=7,
                      color="white" if true == guess else "black")
    axis.set(xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10),
             title=f"Hold-out confusion ({(matrix.trace() / matrix.sum()):.2%} right)")
    return save(figure, path)


def worst_errors(images, labels, probabilities, path, count=24):
    """The wrong predictions the ensemble was surest of."""
    plt = pyplot()
    predicted = probabilities.argmax(axis=1)
    every_wrong = np.flatnonzero(predicted != labels)
    wrong = every_wrong[np.argsort(-probabilities[every_wrong, predicted[every_wrong]])][:count]
    columns = 8
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.55), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, row in zip(axes.flat, wrong):
        axis.imshow(images[row, :, :, 0], cmap="gray_r")
        sure = probabilities[row, predicted[row]]
        axis.set_title(f"true {labels[row]} said {predicted[row]}\n{sure:.2f}", fontsize=7)
    figure.suptitle(f"Worst hold-out errors ({len(every_wrong)} in all)", fontsize=9)
    return save(figure, path)


def test_confidence(probabilities, path):
    plt = pyplot()
    confidence = probabilities.max(axis=1)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.hist(confidence, bins=np.linspace(0.1, 1.0, 46), color="#55a868")
    axis.set_yscale("log")
    axis.set(xlabel="ensemble's top probability", ylabel="test images",
             title=f"Test confidence: {np.mean(confidence < 0.9):.2%} below 0.9")
    return save(figure, path)


def write_plots(out_dir, counts, result, holdout) -> list:
    """Every picture of the run; hold-out pictures only when something was held out."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [label_counts(counts, out / "label_counts.png"),
               training_curves(result.histories, out / "training_curves.png"),
               test_confidence(result.test_probabilities, out / "test_confidence.png")]
    if holdout is not None:
        written.append(confusion_matrix(holdout[1], result.holdout_probabilities, out / "confusion_matrix.png"))
        written.append(worst_errors(holdout[0], holdout[1], result.holdout_probabilities, out / "worst_errors.png"))
    return written


def versions() -> dict:
    import keras
    found = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
             "numpy": np.__version__, "platform": platform.platform()}
    if "tensorflow" in sys.modules or keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        found["tensorflow"] = tf.__version__
    return found


def bundle_hash():
    return os.environ.get("DIGIT_RECOGNIZER_BUNDLE")  # set by the bundle's loader (kaggle_road/bundle.py)
