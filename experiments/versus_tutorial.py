"""Side by side with the tutorial's own pipeline: `benchmark.py throughput` and `benchmark.py race`.

The tutorial's pipeline (ImageDataGenerator, float32, RMSprop, batch 86, augmentation in a Python generator) runs
through tf_keras, the Keras 2 that still has it (`pip install -e ".[bench]"`), in a child process: tf_keras and
Keras 3 do not share a process well. Each side trains the same CNN on the same rows; the first epoch (graph
tracing) is left out of images/s.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time


def load_rows(data_dir, rows=None):
    """Training images and labels, the first `rows` of them (None: all)."""
    from digit_recognizer import data
    images, labels, _ = data.arrays(data.find_data(data_dir), rows or 0)
    return images, labels


class EpochClock:
    """Seconds of each epoch, kept by the Keras callback that `callback()` returns."""

    def __init__(self):
        self.seconds = []

    def callback(self):
        import keras
        return keras.callbacks.LambdaCallback(on_epoch_begin=self.on_epoch_begin, on_epoch_end=self.on_epoch_end)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def fit_member(config, images, labels, **options):
    """One member of family `config.model`, seed `config.seed`, in the precision this machine would choose: its
    model and Keras history (train.fit_members' options: validation, monitor, callbacks)."""
    import dataclasses

    from digit_recognizer import devices, train
    config = dataclasses.replace(config, precision=devices.precision(config))
    nets, histories = train.fit_members(config, (images, labels), [(config.model, config.seed)], **options)
    return nets[0], histories[0]


def steady_images_per_second(clock, rows):
    later = clock.seconds[1:] or clock.seconds  # epoch 1 carries graph tracing
    return rows * len(later) / sum(later)


def ours(images, labels, epochs, batch_size):
    from digit_recognizer import devices
    from digit_recognizer.config import Config
    clock = EpochClock()
    # the field defaults of the day this benchmark was written, before Config() became the recipe
    config = Config(model="tutorial", members=1, epochs=epochs, batch_size=batch_size, verbose=0, learning_rate=1e-3,
                    decay=0.95, dropout_scale=1.0, affine="layers", tta=0, deterministic=True)
    fit_member(config, images, labels, callbacks=[clock.callback()])
    return steady_images_per_second(clock, len(images)), devices.precision(config, devices.accelerator())


TUTORIAL = r'''
import json, sys, time, numpy as np
from tf_keras import layers, models, optimizers, callbacks
from tf_keras.preprocessing.image import ImageDataGenerator
images, labels, epochs = np.load(sys.argv[1]), np.load(sys.argv[2]), int(sys.argv[3])
validation = (np.load(sys.argv[4]), np.eye(10, dtype="float32")[np.load(sys.argv[5])]) if len(sys.argv) > 4 else None
one_hot = np.eye(10, dtype="float32")[labels]
model = models.Sequential([
    layers.Conv2D(32, 5, padding="same", activation="relu", input_shape=(28, 28, 1)),
    layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPool2D(2), layers.Dropout(0.25),
    layers.Conv2D(64, 3, padding="same", activation="relu"), layers.Conv2D(64, 3, padding="same", activation="relu"),
    layers.MaxPool2D(2, strides=2), layers.Dropout(0.25), layers.Flatten(),
    layers.Dense(256, activation="relu"), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
model.compile(optimizer=optimizers.RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-08),
              loss="categorical_crossentropy", metrics=["accuracy"])
generator = ImageDataGenerator(rotation_range=10, zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1)
seconds = []
clock = callbacks.LambdaCallback(on_epoch_begin=lambda e, l: seconds.append(-time.perf_counter()),
                                 on_epoch_end=lambda e, l: seconds.__setitem__(-1, seconds[-1] + time.perf_counter()))
plateau = [callbacks.ReduceLROnPlateau("val_accuracy", patience=3, factor=0.5, min_lr=0.00001)] if validation else []
batch = 86
started = time.perf_counter()
history = model.fit(generator.flow(images, one_hot, batch_size=batch), epochs=epochs, verbose=2,
                    steps_per_epoch=images.shape[0] // batch, validation_data=validation, callbacks=[clock] + plateau)
fit_seconds = time.perf_counter() - started
later = seconds[1:] or seconds
print(json.dumps({"images_per_second": len(images) // batch * batch * len(later) / sum(later),
                  "fit_seconds": fit_seconds, "val_accuracy": history.history.get("val_accuracy", [])}))
'''


def tutorial(images, labels, epochs, validation=None):
    """The tutorial's pipeline in a child process (tf_keras and Keras 3 do not share a process well); with
    `validation`, also its ReduceLROnPlateau on validation accuracy. Returns its last printed line, parsed."""
    import tempfile

    import numpy as np
    with tempfile.TemporaryDirectory() as folder:
        arrays = [images, labels] if validation is None else [images, labels, *validation]
        paths = [f"{folder}/{n}.npy" for n in range(len(arrays))]
        for path, array in zip(paths, arrays):
            np.save(path, array)
        done = subprocess.run([sys.executable, "-c", TUTORIAL, *paths[:2], str(epochs), *paths[2:]],
                              capture_output=True, text=True, env=dict(os.environ, TF_USE_LEGACY_KERAS="0"))
    if done.returncode:
        if "No module named 'tf_keras'" in done.stderr:
            sys.exit('the tutorial pipeline needs tf_keras: pip install -e ".[bench]"')
        sys.exit(f"tutorial pipeline failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_throughput(args) -> dict:
    """Both sides `--repeat` times, alternating, each reported as its median: back-to-back single runs here
    gave 1.73x and 1.16x."""
    images, labels = load_rows(args.data_dir, args.rows)
    theirs, mine = [], []
    for _ in range(args.repeat):
        theirs.append(round(tutorial(images, labels, args.epochs)["images_per_second"]))
        images_per_second, precision = ours(images, labels, args.epochs, args.batch_size)
        mine.append(round(images_per_second))
    return {"benchmark": "throughput", "model": "tutorial", "rows": len(images), "epochs": args.epochs,
            "ours_batch_size": args.batch_size, "tutorial_images_per_second": statistics.median(theirs),
            "ours_images_per_second": statistics.median(mine), "tutorial_each": theirs, "ours_each": mine,
            "speedup": round(statistics.median(mine) / statistics.median(theirs), 2), "ours_precision": precision}


# Our side of the race: one `bn` member of the full recipe, set for a fifth of the tutorial's time: 11 epochs, the
# rate falling 35x (the full preset's 0.8 per epoch is for 15). Hold-out after 11 epochs, one run each (README,
# "Eleven epochs"): dropout x0.5 0.99524, x0.25 0.99405.
RACE = dict(model="bn", members=1, epochs=11, batch_size=64, learning_rate=3e-3, decay=0.7, dropout_scale=0.5, tta=0)


def bench_race(args) -> dict:
    """Issue 4's side by side: the tutorial's pipeline for its 30 epochs, then our single-model recipe on the same
    rows; the seconds of fit each took to reach the tutorial's final hold-out accuracy (checked at epoch ends).
    Ours is scored twice per epoch: the plain forward pass (as the tutorial's), and the recipe's own prediction
    with four one-pixel TTA shifts; that extra scoring (about 4 s an epoch here) is kept off our clock and reported."""
    import keras

    from digit_recognizer import config as configuration, data, devices, ensemble, train
    images, labels = load_rows(args.data_dir)
    defaults = configuration.Config()  # the hold-out every recipe figure is measured on
    kept, held = data.split(labels, defaults.holdout, defaults.holdout_seed)
    holdout = (images[held], labels[held])
    theirs = tutorial(images[kept], labels[kept], args.tutorial_epochs, holdout)
    target = theirs["val_accuracy"][-1]

    config = dataclasses.replace(configuration.PRESETS["full"], **RACE)

    class Marks(keras.callbacks.Callback):
        """Our clock at each epoch end, less the TTA scoring, which a real run does once, at the end."""

        def __init__(self):
            super().__init__()
            self.started, self.ends, self.with_tta, self.scoring = time.perf_counter(), [], [], 0.0

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            self.ends.append(now - self.started - self.scoring)
            self.with_tta.append(ensemble.accuracy(train.predict(self.model, holdout[0], tta=4), holdout[1]))
            self.scoring += time.perf_counter() - now

    marks = Marks()  # started before the model is built: a little against us
    _, history = fit_member(config, images[kept], labels[kept], monitor=holdout, callbacks=[marks])
    plain, with_tta, ends = history["val_accuracy"], marks.with_tta, marks.ends
    reached = {name: next((ends[e] for e, accuracy in enumerate(curve) if accuracy >= target), None)
               for name, curve in (("plain", plain), ("tta4", with_tta))}
    return {"benchmark": "race", "rows": int(len(kept)), "holdout_rows": int(len(held)),
            "tutorial_epochs": args.tutorial_epochs, "tutorial_seconds": round(theirs["fit_seconds"], 1),
            "tutorial_final_accuracy": target, "tutorial_accuracy_by_epoch": theirs["val_accuracy"],
            "ours": RACE, "ours_seconds": round(ends[-1], 1), "ours_accuracy_by_epoch": plain,
            "ours_accuracy_by_epoch_tta4": with_tta, "ours_seconds_by_epoch": [round(t, 1) for t in ends],
            **{f"ours_seconds_to_tutorial_final_{name}": None if t is None else round(t, 1) for name, t in reached.items()},
            **{f"fraction_of_tutorial_time_{name}": None if t is None else round(t / theirs["fit_seconds"], 3)
               for name, t in reached.items()},
            "tta_scoring_seconds": round(marks.scoring, 1), "precision": devices.precision(config, devices.accelerator())}
