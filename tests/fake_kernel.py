"""The pushed kernel, run as the stand-in of Kaggle runs it, with training faked: for tests of the road, where
what is under test is the road, not training.

  python tests/fake_kernel.py SCRIPT     # in the kernel's working folder, as Kaggle runs a kernel
  started(script, folder, env, out, err)  # the same, forked from a process that has numpy, pandas and
                                           # scikit-learn loaded already (the stand-in's way: a second each saved)

It runs the pushed bundle itself: its loader (the package from the zip, the bundle's hash and baked flags),
kernel.py, the settings' checks, the data found and checked as on Kaggle, and the pipeline that writes the files.
Only three things are replaced, before the bundle runs: the ensemble (nearest-centroid members, a moment's numpy
instead of minutes of Keras), the device report, and the versions in summary.json (no backend is loaded). So it
writes what a real run writes, `--min-accuracy` and all: summary.json naming the bundle's hash and Kaggle's data,
submission.csv, test_probabilities.npz and holdout_predictions.npz; the pictures are left out (--no-plots).
"""

import multiprocessing
import os
import runpy
import sys
import types

import numpy as np


def centroid_member(images, labels, test_sets, seed):
    """One member: each digit's average of a bootstrap sample (its seed's) of the training images; its softmax
    over the distances to them, for each of `test_sets`, and its accuracy on its own training rows."""
    picked = np.random.default_rng(seed).integers(0, len(labels), len(labels))
    flat, picked_labels = images[picked].reshape(len(picked), -1), labels[picked]
    centres = np.stack([flat[picked_labels == digit].mean(axis=0) for digit in range(10)])

    def softmax(batch):
        distances = ((batch.reshape(len(batch), 1, -1) - centres[None]) ** 2).sum(axis=2)
        scores = np.exp(-(distances - distances.min(axis=1, keepdims=True)) / 10)
        return scores / scores.sum(axis=1, keepdims=True)
    return [softmax(batch) for batch in test_sets], float(np.mean(softmax(images).argmax(axis=1) == labels))


def train_members(config, rows, clock=None, log=print):
    """What ensemble.train_members returns, of `config.members` centroid members seeded as real ones are."""
    from digit_recognizer import budget, config as configuration
    sys.modules["digit_recognizer.report"].versions = lambda: {"python": sys.version.split()[0], "keras": None,
                                                                "backend": "none (the stand-in's fake kernel)"}
    held = [] if rows.holdout is None else [rows.holdout[0]]
    members = []
    for k, (family, seed) in enumerate(configuration.member_specs(config, range(config.members))):
        log(f"member {k + 1}/{config.members}: {family}, seed {seed}, {len(rows.labels)} training rows (faked)")
        members.append(centroid_member(rows.images, rows.labels, [rows.test_images, *held], seed))
    tested = np.mean([predicted[0] for predicted, _ in members], axis=0)
    holdout = None if rows.holdout is None else [predicted[1] for predicted, _ in members]

    def accuracy(probabilities):
        return float(np.mean(probabilities.argmax(axis=1) == rows.holdout[1]))
    return types.SimpleNamespace(
        test_probabilities=tested, holdout_probabilities=None if holdout is None else np.mean(holdout, axis=0),
        member_accuracy=[] if holdout is None else [accuracy(p) for p in holdout],
        ensemble_accuracy=None if holdout is None else accuracy(np.mean(holdout, axis=0)),
        histories=[{"loss": [1.0], "accuracy": [trained]} for _, trained in members], train_seconds=0.01,
        images_per_second=1.0, device="cpu", precision="float32", member_holdout_probabilities=holdout or [],
        first_round=None, budget=budget.Account(), member_indices=list(range(config.members)), workers=1,
        failures=[])


def main(script: str):
    sys.modules["digit_recognizer.ensemble"] = types.SimpleNamespace(train_members=train_members)
    sys.modules["digit_recognizer.devices"] = types.SimpleNamespace(found=lambda: "GPUs: none (a fake kernel)")
    sys.argv = [script, "--no-plots"]
    runpy.run_path(script, run_name="__main__")


def forked(script: str, folder: str, env: dict, out: str, err: str):
    """main(script) in a forked process, as `python fake_kernel.py SCRIPT` would run it: in `folder`, with
    `env` as its environment and its output to the files `out` and `err`."""
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    for stream, path in ((sys.stdout, out), (sys.stderr, err)):
        stream.flush()
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, stream.fileno())
        os.close(handle)
    main(script)


FORKS = {}  # the context whose forkserver holds the libraries every fake kernel loads


def started(script, folder, env: dict, out, err) -> multiprocessing.Process:
    """A fake kernel forked (forked(...)) from a server that imported numpy, pandas and scikit-learn once, not
    the package: the bundle brings its own."""
    if not FORKS:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "pandas", "sklearn.model_selection"])
        FORKS["context"] = context
    process = FORKS["context"].Process(target=forked, args=(str(script), str(folder), env, str(out), str(err)))
    process.start()
    return process


if __name__ == "__main__":
    main(sys.argv[1])
