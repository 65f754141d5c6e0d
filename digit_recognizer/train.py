"""Fits members: one model with callbacks, or several side by side in one model that a step trains together.

Backend-neutral: Keras and keras.ops, fed numpy arrays (feed.py); augmentation is a layer inside each member's model.
"""

import dataclasses
import re

import keras
import numpy as np

from digit_recognizer import augment, devices, feed, model as models

# Steps that one call into the backend runs: Keras's per-step Python is paid once for all of them. The weights come
# out the same as one step a call (the research log), and callbacks still see every epoch's end.
STEPS_PER_EXECUTION = 16


class BudgetCallback(keras.callbacks.Callback):
    """Asks a budget.Budget at each epoch whether another may run, and stops the fit when it says no."""

    def __init__(self, budget):
        super().__init__()
        self.budget = budget

    def on_epoch_begin(self, epoch, logs=None):
        self.budget.begin()

    def on_epoch_end(self, epoch, logs=None):
        if self.budget.end(epoch, self.params["epochs"]):
            self.model.stop_training = True


def schedule_callbacks(config, has_validation: bool) -> list:
    if config.schedule == "plateau":
        # the tutorial's: halve the rate when validation accuracy stalls
        found = [keras.callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=config.plateau_patience,
                                                   min_lr=1e-5, verbose=1)]
    else:
        found = []  # the other schedules live in the optimizer: see make_optimizer
    if has_validation:
        # patience past the last epoch: never stops early, only restores the best epoch's weights at the end
        found.append(keras.callbacks.EarlyStopping("val_accuracy", patience=config.epochs, restore_best_weights=True))
    return found


def learning_rate(config, steps_per_epoch: int):
    """lr * decay**epoch, applied at every step (smooth, so short runs settle too); or cosine: a linear warm-up
    from lr/10 over the first epoch (BatchNorm statistics settle before the big steps), then a half cosine that
    ends at zero with the last step, so a fixed budget finishes annealed; onecycle: the same shape with the
    warm-up over the first quarter of all steps, for runs of a few epochs; plateau needs a plain float."""
    if config.schedule == "plateau":
        return config.learning_rate
    if config.schedule == "onecycle":
        steps = config.epochs * steps_per_epoch
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate / 10, steps - steps // 4, warmup_target=config.learning_rate, warmup_steps=steps // 4)
    if config.schedule == "cosine" and config.epochs == 1:  # nothing after a warm-up: the cosine alone
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, steps_per_epoch)
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate / 10, (config.epochs - 1) * steps_per_epoch,
            warmup_target=config.learning_rate, warmup_steps=steps_per_epoch)
    return keras.optimizers.schedules.ExponentialDecay(config.learning_rate, steps_per_epoch, config.decay)


def schedule_length(config, rows: int) -> tuple[int, int]:
    """A fit's epochs and steps per epoch on `rows`: config.epochs, or more where that makes fewer than
    config.min_steps steps."""
    per_epoch = -(-rows // config.batch_size)
    return max(config.epochs, -(-config.min_steps // per_epoch)), per_epoch


def averaged_momentum(config, steps: int) -> float:
    """config.ema for a fit of `steps` steps, capped so that the average spans at most a fifth of them: Keras's
    moving average has no warm-up, so over a short fit a larger momentum keeps mostly the initial weights
    (0.999 over 30 steps: 97% the first step's). 0: no average."""
    return max(0.0, min(config.ema, 1 - 5 / steps))


def ema_note(config, rows: int) -> str | None:
    """The log's line when averaged_momentum caps --ema for a fit on `rows`; else None."""
    epochs, per_epoch = schedule_length(config, rows)
    momentum = averaged_momentum(config, epochs * per_epoch)
    if momentum >= config.ema:
        return None
    return (f"ema: --ema {config.ema:g} spans about {1 / (1 - config.ema):.0f} steps, more than a fifth of a "
            f"member's {epochs * per_epoch}: " + (f"averaging with {momentum:.3g} instead" if momentum else
                                                  "no average over so few steps"))


def make_optimizer(config, rate):
    """Adam or the tutorial's RMSprop at `rate` (a float or a schedule: learning_rate); with `ema`, the weights'
    moving average replaces them at the end of fit."""
    options = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate, rho=0.9, epsilon=1e-8, **options)
    return keras.optimizers.Adam(learning_rate=rate, **options)


def loss_function(config):
    """Cross-entropy on integer labels; with label smoothing the labels are one-hot encoded inside the loss, so
    data, validation and the accuracy metric keep integer labels."""
    if not config.label_smoothing:
        return "sparse_categorical_crossentropy"

    def smoothed_crossentropy(labels, probabilities):
        targets = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"), 10)
        return keras.losses.categorical_crossentropy(targets, probabilities, label_smoothing=config.label_smoothing)
    return smoothed_crossentropy


def stacked(branches) -> keras.Model:
    """One model whose outputs are the branches' (each a whole member, from the image to its softmax): they share
    the input and nothing else, so each branch's weights get the gradient of its own loss alone."""
    if len(branches) == 1:
        return branches[0]
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    return keras.Model(inputs, [branch(inputs) for branch in branches], name="members")


def branch_history(history: dict, name: str) -> dict:
    """One branch's share of a stacked model's history, under the plain names (loss, accuracy, val_accuracy)."""
    found = {}
    for key, values in history.items():
        match = re.fullmatch(rf"(val_)?{name}_(\w+)", key)
        if match:
            found[(match[1] or "") + match[2]] = values
    return found


def build_members(config, members) -> list:
    """A model for each (family, seed) in `members`, each built after seeding with its own seed. They are built
    last to first: the first member is built last, so the random state its fit then draws from is the one it
    would see alone."""
    branches = []
    for family, seed in reversed(members):
        keras.utils.set_random_seed(seed)
        member = dataclasses.replace(config, model=family)
        layer = augment.augmentation(member, seed) if augment.augments(config) else None
        branches.insert(0, models.build_model(member, layer, name=family if len(members) == 1 else f"{family}_{seed}"))
    return branches


def fit_members(config, training, members, validation=None, monitor=None, callbacks=()):
    """Trains `members`, a list of (family, seed), side by side on `training` (images, labels): one model holds
    them all, so one step trains every member and a step's fixed cost (a GPU's launches, Python) is paid once.
    Each member draws its own initialisation, augmentation and dropout from its seed, as it would alone; they
    share the order of the rows, the first member's. Returns one model per member and its Keras history.
    `validation` (images, labels) drives the callbacks and the best-weight restore; without it, `monitor` (the
    hold-out) is only scored each epoch, for the curves. `callbacks` are added to the schedule's.
    `config.precision` is the dtype policy, as devices.precision decided it (not "auto")."""
    images, labels = training
    devices.set_seeds(members[0][1], config.deterministic)
    keras.config.set_dtype_policy(config.precision)
    epochs, steps_per_epoch = schedule_length(config, len(images))
    config = dataclasses.replace(config, epochs=epochs, ema=averaged_momentum(config, epochs * steps_per_epoch))
    branches = build_members(config, members)
    net = stacked(branches)
    rate = learning_rate(config, steps_per_epoch)
    several = {branch.name: loss_function(config) for branch in branches}
    net.compile(optimizer=make_optimizer(config, rate),
                loss=several if len(branches) > 1 else loss_function(config),
                metrics={name: ["accuracy"] for name in several} if len(branches) > 1 else ["accuracy"],
                steps_per_execution=STEPS_PER_EXECUTION)

    def targets(y):  # every branch learns the same labels, as int32: JAX warns as it truncates int64
        y = np.asarray(y, np.int32)
        return {name: y for name in several} if len(branches) > 1 else y

    # a loss that is not finite stops the fit at once: what follows would only average NaNs into a submission
    callbacks = [*schedule_callbacks(config, validation is not None), *callbacks, keras.callbacks.TerminateOnNaN()]
    validation = validation if validation is not None else monitor
    validation = None if validation is None else (validation[0], targets(validation[1]))
    history = net.fit(**feed.fit_rows(images, targets(labels), config.batch_size), epochs=config.epochs,
                      validation_data=validation, callbacks=callbacks, verbose=config.verbose)
    history = history.history
    check_finite(history["loss"], config, members)
    if config.schedule != "plateau":  # record the rate each epoch began with, as ReduceLROnPlateau logs it
        history["learning_rate"] = [float(rate(e * steps_per_epoch)) for e in range(len(history["loss"]))]
    if len(branches) == 1:
        return branches, [history]
    shared = {"learning_rate": history["learning_rate"]}
    return branches, [branch_history(history, branch.name) | shared for branch in branches]


def check_finite(losses, config, members) -> None:
    """A ValueError when the loss stopped being a number: such a member has learned nothing to predict with."""
    bad = next((epoch for epoch, loss in enumerate(losses) if not np.isfinite(loss)), None)
    if bad is not None:
        names = ", ".join(f"{family} (seed {seed})" for family, seed in members)
        raise ValueError(f"training {names}: the loss became {losses[bad]} in epoch {bad + 1}, so the run stopped; "
                         f"--learning-rate {config.learning_rate:g} is likely too high: try a tenth of it")


def predict(net, images, tta: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Softmax probabilities, averaged over the images and `tta` one-pixel shifts of them. A batch at a time
    through predict_on_batch: `predict` first builds a dataset of the whole array, which on a CPU cost more than
    the forward passes (the research log)."""
    def probabilities(view):
        return np.concatenate([net.predict_on_batch(view[start:start + batch_size])
                               for start in range(0, len(view), batch_size)])
    views = [images] + [np.roll(images, move, axis=(1, 2)) for move in augment.SHIFTS[:tta]]
    return np.mean([probabilities(view) for view in views], axis=0)
