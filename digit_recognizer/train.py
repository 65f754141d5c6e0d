"""Fits one member with callbacks, then an ensemble of seeded members whose softmax outputs are averaged.

Backend-neutral: Keras and keras.ops, fed numpy arrays. The one TensorFlow-only path is the optional tf.data map
that augments in parallel with the training step (`--augment-in map`); by default augmentation is in the model.
"""

import contextlib
import dataclasses
import pathlib
import time

import keras
import numpy as np

from digit_recognizer import augment, config as configuration, data, model as models


def accelerator() -> str:
    """'gpu' or 'cpu' for the device Keras will train on."""
    return "gpu" if gpu_count() else "cpu"


def cpu_has_bf16() -> bool:
    """AMX (Intel) or AVX512-BF16 (AMD Zen 4): bf16 instructions, so mixed_bfloat16 beats float32 (here 2x on
    matmuls, about 1.4x on the seed CNN)."""
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
        return "amx_bf16" in flags or "avx512_bf16" in flags
    except OSError:
        return False


def precision(config, device: str) -> str:
    """The dtype policy for `precision=auto`: half precision wherever the hardware gains from it, except float16
    on several GPUs under TensorFlow. There Keras's loss scaling checks each GPU's gradients alone (Keras 3.15),
    so one GPU's float16 overflow is summed into the weights: on two mirrored logical CPUs the weights turned
    NaN at the second step in 2 of 3 seeded runs (experiments/README.md, "Every GPU")."""
    mirrored = device == "gpu" and gpu_count() > 1 and keras.backend.backend() == "tensorflow"
    if config.precision == "mixed_float16" and mirrored:
        raise ValueError("config: precision=mixed_float16 on several GPUs under TensorFlow turns the weights NaN "
                         "(Keras checks each GPU's gradients alone); use --precision auto or float32")
    if config.precision != "auto":
        return config.precision
    if device == "gpu":
        # Kaggle's T4s have float16 tensor cores and no bfloat16. Where float16 is unsafe, float32 costs little:
        # a step of batch 64 was bound by overhead, not arithmetic, on the H100 (experiments/README.md)
        return "float32" if mirrored else "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def set_seeds(seed: int, deterministic: bool = True) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and the backend
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()  # same seed, same submission; it also turns XLA off


def gpu_count() -> int:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return sum(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch
        return torch.cuda.device_count()
    return 0


def all_gpus():
    """A scope that trains on every GPU of the machine (Kaggle's default has two T4s): data parallel, the batch
    split across devices. One device or a CPU: no change."""
    if gpu_count() < 2:
        return contextlib.nullcontext()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.distribute.MirroredStrategy().scope()
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    return contextlib.nullcontext()


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


def make_optimizer(config, rate):
    """Adam, the tutorial's RMSprop or SGD with Nesterov momentum at `rate` (a float or a schedule:
    learning_rate). With `weight_decay`, Keras 3 decouples it from the gradient (AdamW's rule, for any of them):
    each step every kernel shrinks by rate x weight_decay of itself. BatchNorm's scales and offsets and the
    biases are left alone, as usual: a convolution followed by BatchNorm does not care about its kernel's size,
    so the decay there only speeds up the effective learning rate, while shrinking the BatchNorm scale would
    shrink the signal itself."""
    options = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    options |= {"weight_decay": config.weight_decay} if config.weight_decay else {}
    if config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(learning_rate=rate, rho=0.9, epsilon=1e-8, **options)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True, **options)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=rate, **options)
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def loss_function(config):
    """Cross-entropy on integer labels; with label smoothing the labels are one-hot encoded inside the loss, so
    data, validation and the accuracy metric keep integer labels."""
    if not config.label_smoothing:
        return "sparse_categorical_crossentropy"

    def smoothed_crossentropy(labels, probabilities):
        targets = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"), 10)
        return keras.losses.categorical_crossentropy(targets, probabilities, label_smoothing=config.label_smoothing)
    return smoothed_crossentropy


def augmented_batches(images, labels, config, seed: int):
    """A tf.data pipeline that shuffles, batches, then augments whole batches in a parallel map."""
    import tensorflow as tf
    layer = augment.augmentation(config, seed)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(config.batch_size)
    dataset = dataset.map(lambda x, y: (layer(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def fit_member(config, images, labels, validation=None, seed=None, device=None, monitor=None, callbacks=()):
    """One trained model and its Keras history. `validation` (images, labels) drives the callbacks and the
    best-weight restore; without it, `monitor` (the hold-out) is only scored each epoch, for the curves.
    `callbacks` are added to the schedule's (benchmarks time epochs with them)."""
    seed = config.seed if seed is None else seed
    device = device or accelerator()
    set_seeds(seed, config.deterministic)
    keras.config.set_dtype_policy(precision(config, device))
    placement = augment.placement(config)
    steps_per_epoch = -(-len(images) // config.batch_size)
    config = dataclasses.replace(config, epochs=max(config.epochs, -(-config.min_steps // steps_per_epoch)))
    with all_gpus():
        net = models.build_model(config, augment.augmentation(config, seed) if placement == "model" else None)
        rate = learning_rate(config, steps_per_epoch)
        net.compile(optimizer=make_optimizer(config, rate), loss=loss_function(config),
                    metrics=["accuracy"])
    callbacks = schedule_callbacks(config, validation is not None) + list(callbacks)
    validation = validation if validation is not None else monitor
    if placement != "map":
        history = net.fit(images, labels, batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
                          validation_data=validation, callbacks=callbacks, verbose=config.verbose)
    else:
        history = net.fit(augmented_batches(images, labels, config, seed), epochs=config.epochs, shuffle=False,
                          validation_data=validation, callbacks=callbacks, verbose=config.verbose)
    history = history.history
    if config.schedule != "plateau":  # record the rate each epoch began with, as ReduceLROnPlateau logs it
        history["learning_rate"] = [float(rate(e * steps_per_epoch)) for e in range(len(history["loss"]))]
    return net, history


def predict(net, images, tta: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Softmax probabilities, averaged over the images and `tta` one-pixel shifts of them."""
    views = [images] + [np.roll(images, move, axis=(1, 2)) for move in augment.SHIFTS[:tta]]
    return np.mean([net.predict(view, batch_size=batch_size, verbose=0) for view in views], axis=0)


@dataclasses.dataclass
class Result:
    test_probabilities: np.ndarray  # (test rows, 10), the ensemble's average
    holdout_probabilities: np.ndarray | None  # (hold-out rows, 10), or None when nothing is held out
    member_accuracy: list  # each member's hold-out accuracy (empty without a hold-out)
    ensemble_accuracy: float | None
    histories: list  # each member's Keras history (loss, accuracy, learning_rate, val_* per epoch)
    train_seconds: float  # in fit, all members together
    images_per_second: float  # training images (epochs x rows) per second of fit, all members together
    device: str
    precision: str
    # each member's own (hold-out rows, 10), to weigh or subset the ensemble after the run
    member_holdout_probabilities: list = dataclasses.field(default_factory=list)
    predict_seconds: float = 0.0  # predicting test and hold-out, all members together
    # with --pseudo, the first round's Result (the fields above are the second's), to tell what the round gained
    first_round: "Result | None" = None


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def train_ensemble(config, images, labels, test_images, holdout=None, log=print) -> Result:
    """`config.members` members, each with its own seed and (with config.validation) its own validation split;
    `holdout` (images, labels), never trained on, measures each member and the average of their softmaxes."""
    device = accelerator()
    test_sum = np.zeros((len(test_images), 10), np.float64)
    member_accuracy, member_probabilities, histories, trained_images = [], [], [], 0
    train_seconds = predict_seconds = 0.0
    for member in range(config.members):
        seed = config.seed + 1000 * member
        member_config = dataclasses.replace(config, model=configuration.member_family(config, member))
        kept, checked = data.split(labels, config.validation, seed, "--validation")
        validation = (images[checked], labels[checked]) if len(checked) else None
        log(f"member {member + 1}/{config.members}: {member_config.model}, seed {seed}, {len(kept)} training rows")
        started = time.perf_counter()
        net, history = fit_member(member_config, images[kept], labels[kept], validation, seed, device,
                                  monitor=holdout)
        train_seconds += time.perf_counter() - started
        started = time.perf_counter()
        trained_images += len(kept) * len(history["loss"])
        histories.append(history)
        test_sum += predict(net, test_images, config.tta)
        if holdout is not None:
            probabilities = predict(net, holdout[0], config.tta)
            member_probabilities.append(probabilities)
            member_accuracy.append(accuracy(probabilities, holdout[1]))
            log(f"member {member + 1}: hold-out accuracy {member_accuracy[-1]:.5f}")
        predict_seconds += time.perf_counter() - started
        keras.backend.clear_session()  # free the graph before the next member
    holdout_mean = None if holdout is None else np.sum(member_probabilities, axis=0, dtype=np.float64) / config.members
    return Result(
        test_probabilities=test_sum / config.members,
        holdout_probabilities=holdout_mean,
        member_accuracy=member_accuracy,
        ensemble_accuracy=None if holdout is None else accuracy(holdout_mean, holdout[1]),
        histories=histories,
        train_seconds=train_seconds,
        predict_seconds=predict_seconds,
        images_per_second=trained_images / train_seconds,
        device=device,
        precision=precision(config, device),
        member_holdout_probabilities=member_probabilities,
    )


def pseudo_labelled(config, images, labels, test_images, test_probabilities, log=print):
    """The training rows plus the test images that `test_probabilities` (an ensemble's) gives a class with at
    least `config.pseudo` confidence, labelled with that class."""
    confident = np.flatnonzero(test_probabilities.max(axis=1) >= config.pseudo)
    log(f"pseudo-labels: {len(confident)} of {len(test_images)} test images at confidence >= {config.pseudo}")
    guesses = test_probabilities[confident].argmax(axis=1)
    return np.concatenate([images, test_images[confident]]), np.concatenate([labels, guesses])


def train_members(config, images, labels, test_images, holdout=None, log=print) -> Result:
    """The ensemble; with `config.pseudo`, a second ensemble that also learns the test images the first one
    labelled with at least that confidence. Legitimate here: the test images are given, their labels are not."""
    first = train_ensemble(config, images, labels, test_images, holdout, log)
    if not config.pseudo:
        return first
    log(f"first-round hold-out {first.ensemble_accuracy}")
    taught_images, taught_labels = pseudo_labelled(config, images, labels, test_images, first.test_probabilities, log)
    if len(taught_labels) == len(labels):
        return first
    second = train_ensemble(config, taught_images, taught_labels, test_images, holdout, log)
    second.histories = first.histories + second.histories
    second.train_seconds += first.train_seconds
    second.predict_seconds += first.predict_seconds
    second.first_round = first
    return second
