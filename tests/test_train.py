import contextlib
import dataclasses
import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from digit_recognizer import data, pipeline, train
from digit_recognizer.config import Config

TINY = Config(model="bn", members=1, epochs=1, batch_size=16, verbose=0, precision="float32", tta=0,
              deterministic=True)


def test_one_fit_step_learns_and_records_history(sample_frames):
    train_frame, _ = sample_frames
    images, labels = data.to_images(train_frame.iloc[:64]), train_frame["label"].to_numpy()[:64]
    ended = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch))
    net, history = train.fit_member(TINY, images, labels, validation=(images[:16], labels[:16]), callbacks=[clock])
    assert ended == [0]  # extra callbacks run beside the schedule's
    assert set(history) >= {"loss", "accuracy", "val_accuracy", "learning_rate"}
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    assert np.allclose(history["learning_rate"], [TINY.learning_rate])
    probabilities = train.predict(net, images[:5], tta=4)
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the map is a tf.data pipeline")
@pytest.mark.parametrize("affine", ["layers", "once"])
def test_map_pipeline_augments_whole_batches(affine):
    images = np.zeros((40, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16] = 1.0  # every image the same bar, so shuffling cannot hide a change
    config = dataclasses.replace(TINY, elastic=16.0, augment_in="map", affine=affine)
    batches = [(x.numpy(), y.numpy()) for x, y in train.augmented_batches(images, np.arange(40) % 10, config, 3)]
    assert [len(x) for x, _ in batches] == [16, 16, 8] and all(len(y) == len(x) for x, y in batches)
    assert not np.allclose(batches[0][0], images[:16])
    assert 0.0 <= batches[0][0].min() and batches[0][0].max() <= 1.0 + 1e-6


def test_fit_member_passes_seed_and_determinism(monkeypatch):
    calls = []
    monkeypatch.setattr(train, "set_seeds", lambda seed, deterministic=True: calls.append((seed, deterministic)))
    x, y = np.zeros((8, 28, 28, 1), np.float32), np.arange(8) % 10
    train.fit_member(dataclasses.replace(TINY, deterministic=False, model="tutorial"), x, y, seed=7)
    assert calls == [(7, False)]


def test_exponential_schedule_and_restore_best():
    config = dataclasses.replace(TINY, learning_rate=0.01, decay=0.5, epochs=4)
    schedule = train.learning_rate(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 20)]
    assert np.allclose(rates, [0.01, 0.01 * 0.5 ** 0.5, 0.005, 0.0025])  # decay per epoch, applied per step
    callbacks = train.schedule_callbacks(config, has_validation=True)
    assert len(callbacks) == 1 and callbacks[0].restore_best_weights and callbacks[0].patience == 4
    plateau_config = dataclasses.replace(config, schedule="plateau")
    assert train.learning_rate(plateau_config, 10) == 0.01
    plateau = train.schedule_callbacks(plateau_config, has_validation=False)
    assert isinstance(plateau[0], keras.callbacks.ReduceLROnPlateau) and len(plateau) == 1


def test_cosine_schedule_warms_up_then_ends_at_zero():
    config = dataclasses.replace(TINY, learning_rate=0.01, schedule="cosine", epochs=3)
    schedule = train.learning_rate(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 20, 30)]
    assert np.allclose(rates, [0.001, 0.0055, 0.01, 0.005, 0.0], atol=1e-6)  # warm-up, peak, half-way, end
    one_epoch = train.learning_rate(dataclasses.replace(config, epochs=1), steps_per_epoch=10)
    assert np.isclose(float(one_epoch(0)), 0.01)  # no warm-up when there is nothing after it


def test_onecycle_warms_up_over_a_quarter_of_all_steps_then_ends_at_zero():
    config = dataclasses.replace(TINY, learning_rate=0.01, schedule="onecycle", epochs=4)
    schedule = train.learning_rate(config, steps_per_epoch=10)  # 40 steps: 10 of warm-up, 30 of cosine
    rates = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert np.allclose(rates, [0.001, 0.0055, 0.01, 0.005, 0.0], atol=1e-6)


def test_min_steps_adds_epochs_when_the_rows_are_few(sample_frames):
    train_frame, _ = sample_frames
    images, labels = data.to_images(train_frame.iloc[:32]), train_frame["label"].to_numpy()[:32]
    config = dataclasses.replace(TINY, model="lenet", min_steps=5)  # 2 steps an epoch: 3 epochs make 6 steps
    _, history = train.fit_member(config, images, labels)
    assert len(history["loss"]) == 3
    _, history = train.fit_member(dataclasses.replace(config, epochs=4), images, labels)
    assert len(history["loss"]) == 4  # never fewer than asked


def test_precision_choice():
    assert train.precision(Config(), "gpu") == "mixed_float16"
    assert train.precision(Config(precision="float32"), "gpu") == "float32"
    assert train.precision(Config(), "cpu") in ("mixed_bfloat16", "float32")


class Constant:
    """A stand-in model whose softmax is fixed: lets the ensemble's averaging be checked exactly."""

    def __init__(self, digit):
        self.digit = digit

    def predict(self, images, batch_size=None, verbose=0):
        out = np.full((len(images), 10), 0.05, np.float32)
        out[:, self.digit] = 0.55
        return out


def test_ensemble_averages_member_softmaxes(monkeypatch):
    digits = iter([1, 1, 7])
    monkeypatch.setattr(train, "fit_member", lambda *a, **k: (Constant(next(digits)), {"loss": [0.0]}))
    images = np.zeros((20, 28, 28, 1), np.float32)
    labels = np.array([1] * 10 + [7] * 10)
    config = dataclasses.replace(TINY, members=3, validation=0.2)
    result = train.train_ensemble(config, images, labels, images[:4], (images[:4], np.array([1, 1, 7, 7])),
                                  log=lambda *_: None)
    assert np.allclose(result.test_probabilities[0, [1, 7]], [(0.55 * 2 + 0.05) / 3, (0.05 * 2 + 0.55) / 3])
    assert result.member_accuracy == [0.5, 0.5, 0.5]
    assert result.ensemble_accuracy == 0.5
    assert len(result.histories) == 3 and result.images_per_second > 0


def test_members_alternate_families_and_seeds(monkeypatch):
    seen = []

    def fake_fit(config, images, labels, validation, seed, device, monitor=None):
        seen.append((config.model, seed, validation is None, monitor is not None))
        return Constant(1), {"loss": [0.0]}

    monkeypatch.setattr(train, "fit_member", fake_fit)
    images, labels = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 2
    config = dataclasses.replace(TINY, model="bn+deep", members=3)
    train.train_ensemble(config, images, labels, images[:2], (images[:2], labels[:2]), log=lambda *_: None)
    assert seen == [("bn", 42, True, True), ("deep", 1042, True, True), ("bn", 2042, True, True)]


def test_ema_and_single_device_scope():
    optimizer = train.make_optimizer(dataclasses.replace(TINY, ema=0.99), 1e-3)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99
    assert not train.make_optimizer(TINY, 1e-3).use_ema
    if train.gpu_count() < 2:  # one device or none: training is left as it is
        assert isinstance(train.all_gpus(), contextlib.nullcontext)


def test_weight_decay_shrinks_kernels_and_spares_batchnorm():
    inputs = keras.Input((3,))
    net = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(2)(inputs)))
    optimizer = train.make_optimizer(dataclasses.replace(TINY, weight_decay=0.5), 0.1)
    before = {v.name: keras.ops.convert_to_numpy(v) + 1.0 for v in net.trainable_variables}  # + 1: none is 0
    for variable in net.trainable_variables:
        variable.assign(before[variable.name])
    # zero gradients: Adam's own step is zero, so all that moves is the decay
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in net.trainable_variables])
    ratio = {v.name: keras.ops.convert_to_numpy(v) / before[v.name] for v in net.trainable_variables}
    assert np.allclose(ratio["kernel"], 1 - 0.1 * 0.5)
    assert all(np.allclose(ratio[name], 1) for name in ("bias", "gamma", "beta"))
    assert train.make_optimizer(TINY, 0.1).weight_decay is None


def test_sgd_takes_a_nesterov_momentum_step():
    weight = keras.Variable(np.ones(2, "float32"))
    optimizer = train.make_optimizer(dataclasses.replace(TINY, optimizer="sgd"), 0.1)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array([1.0, -2.0], "float32")), weight)])
    # Nesterov's first step looks ahead along the new velocity: (1 + 0.9) x rate x gradient, where plain SGD
    # moves 0.1 x gradient and Adam 0.1 x its sign
    assert np.allclose(keras.ops.convert_to_numpy(weight), [1 - 0.19, 1 + 0.38])


def test_precision_avoids_float16_on_mirrored_gpus(monkeypatch):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the mirrored float16 guard is for TensorFlow")
    auto, half = Config(precision="auto"), Config(precision="mixed_float16")
    monkeypatch.setattr(train, "gpu_count", lambda: 1)
    assert train.precision(auto, "gpu") == train.precision(half, "gpu") == "mixed_float16"
    monkeypatch.setattr(train, "gpu_count", lambda: 2)
    assert train.precision(auto, "gpu") == "float32"
    with pytest.raises(ValueError, match="several GPUs"):
        train.precision(half, "gpu")


def run_script(script: str, **env):
    """Runs `script` in a fresh Python (a backend and its devices are fixed at first import) and expects 'ok'."""
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


@pytest.mark.parametrize("affine", ["layers", "once"])
def test_trains_on_two_mirrored_devices(affine):
    """Kaggle's two T4s, played by two logical CPUs: the model built under MirroredStrategy, fit, TTA predict."""
    script = (
        "import numpy as np, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "mirrored = tf.distribute.MirroredStrategy\n"
        "tf.distribute.MirroredStrategy = lambda: mirrored(['/cpu:0', '/cpu:1'])\n"
        "from digit_recognizer import train\n"
        "from digit_recognizer.config import Config\n"
        "train.gpu_count = lambda: 2\n"
        "x = np.random.default_rng(0).random((64, 28, 28, 1), np.float32); y = np.arange(64) % 10\n"
        f"config = Config(model='bn', epochs=2, batch_size=16, verbose=0, deterministic=False, affine='{affine}')\n"
        "net, h = train.fit_member(config, x, y)\n"
        "assert net.distribute_strategy.num_replicas_in_sync == 2, net.distribute_strategy\n"
        "assert net.dtype_policy.name == 'float32' and np.isfinite(h['loss']).all(), (net.dtype_policy, h)\n"
        "assert train.predict(net, x[:8], tta=4).shape == (8, 10)\n"
        "print('ok')\n"
    )
    run_script(script, KERAS_BACKEND="tensorflow")


def test_pseudo_labels_add_confident_test_images(monkeypatch):
    trained_on = []

    def fake_fit(config, images, labels, validation, seed, device, monitor=None):
        trained_on.append(len(images))
        return Constant(7), {"loss": [0.0]}  # 0.55 sure of a 7 for every image

    monkeypatch.setattr(train, "fit_member", fake_fit)
    images, labels, test = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 2, np.zeros((6, 28, 28, 1))
    quiet = dict(holdout=None, log=lambda *_: None)
    train.train_members(dataclasses.replace(TINY, pseudo=0.6), images, labels, test, **quiet)
    assert trained_on == [20]  # nobody at 0.6: no second round
    trained_on.clear()
    result = train.train_members(dataclasses.replace(TINY, pseudo=0.5), images, labels, test, **quiet)
    assert trained_on == [20, 26] and len(result.histories) == 2
    trained_on.clear()
    train.train_members(TINY, images, labels, test, **quiet)
    assert trained_on == [20]


def test_pseudo_labelled_appends_only_the_sure_test_images_with_their_class():
    images, labels = np.zeros((3, 28, 28, 1)), np.array([4, 5, 6])
    test = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 28, 28, 1))
    probabilities = np.full((4, 10), 0.01)
    probabilities[[0, 2, 3], [9, 1, 2]] = [0.999, 0.9989, 0.9995]
    taught_images, taught_labels = train.pseudo_labelled(Config(pseudo=0.999), images, labels, test, probabilities,
                                                         log=lambda *_: None)
    assert taught_labels.tolist() == [4, 5, 6, 9, 2]
    assert taught_images.shape == (5, 28, 28, 1) and taught_images[3:, 0, 0, 0].tolist() == [0.0, 3.0]


def test_pseudo_run_keeps_the_first_rounds_hold_out_scores(monkeypatch, tmp_path):
    digits = iter([7, 3])  # round one reads every image as a 7, round two as a 3
    monkeypatch.setattr(train, "fit_member", lambda *args, **kwargs: (Constant(next(digits)), {"loss": [0.0]}))
    images, labels, test = np.zeros((20, 28, 28, 1), np.float32), np.full(20, 3), np.zeros((6, 28, 28, 1))
    holdout = (np.zeros((4, 28, 28, 1), np.float32), np.full(4, 3))
    result = train.train_members(dataclasses.replace(TINY, pseudo=0.5), images, labels, test, holdout,
                                            log=lambda *_: None)
    assert result.first_round.ensemble_accuracy == 0.0 and result.ensemble_accuracy == 1.0
    saved = np.load(pipeline.write_holdout_predictions(tmp_path, TINY, result, np.arange(4), holdout[1]))
    assert saved["members"].shape == saved["first_round_members"].shape == (1, 4, 10)
    assert (saved["members"].argmax(-1) == 3).all() and (saved["first_round_members"].argmax(-1) == 7).all()


def other_backend():
    for name in ("jax", "torch"):
        if importlib.util.find_spec(name):
            return name
    return None


@pytest.mark.skipif(other_backend() is None, reason="neither jax nor torch is installed")
@pytest.mark.parametrize("affine", ["layers", "once"])
def test_trains_one_step_under_a_second_backend(affine):
    script = (
        "import numpy as np, keras\n"
        "from digit_recognizer import train\n"
        "from digit_recognizer.config import Config\n"
        "x = np.random.rand(32, 28, 28, 1).astype('float32'); y = np.arange(32) % 10\n"
        f"config = Config(model='bn', epochs=1, batch_size=16, verbose=0, precision='float32', elastic=16.0, affine='{affine}')\n"
        "net, h = train.fit_member(config, x, y)\n"
        "assert keras.backend.backend() != 'tensorflow' and np.isfinite(h['loss'][0])\n"
        # the augmentation layers (elastic included) must not switch jit off: eager steps ran 200x slower on a GPU
        "assert keras.backend.backend() != 'jax' or net.jit_compile is True\n"
        "print('ok', keras.backend.backend())\n"
    )
    run_script(script, KERAS_BACKEND=other_backend())


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_trains_data_parallel_on_two_jax_devices():
    """keras.distribution.DataParallel over two host devices, as over two GPUs; float16 is safe there."""
    script = (
        "import numpy as np, jax, keras\n"
        "from digit_recognizer import train\n"
        "from digit_recognizer.config import Config\n"
        "train.gpu_count = lambda: 2\n"
        "x = np.random.default_rng(0).random((64, 28, 28, 1), np.float32); y = np.arange(64) % 10\n"
        "net, h = train.fit_member(Config(model='bn', epochs=2, batch_size=16, verbose=0, deterministic=False), x, y)\n"
        "assert len(jax.devices()) == 2 and isinstance(keras.distribution.distribution(), "
        "keras.distribution.DataParallel)\n"
        "assert net.dtype_policy.name == 'mixed_float16' and np.isfinite(h['loss']).all(), h\n"
        "print('ok')\n"
    )
    run_script(script, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")


def test_label_smoothing_spreads_the_target():
    probabilities = np.full((1, 10), 0.1, np.float32)
    plain = train.loss_function(TINY)
    assert plain == "sparse_categorical_crossentropy"
    smoothed = train.loss_function(dataclasses.replace(TINY, label_smoothing=0.1))
    uniform = float(keras.ops.mean(smoothed(np.array([3]), probabilities)))
    assert np.isclose(uniform, np.log(10), atol=1e-4)  # any target mix against a uniform guess costs log 10
    confident = np.eye(10, dtype=np.float32)[[3]] * 0.99 + 0.001
    assert float(keras.ops.mean(smoothed(np.array([3]), confident))) > 0.3  # smoothing penalises certainty
