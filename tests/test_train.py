import dataclasses
import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from digit_recognizer import data, devices, model as models, train
from digit_recognizer.config import Config

TINY = Config(model="bn", members=1, epochs=1, batch_size=16, verbose=0, precision="float32", tta=0,
              deterministic=True)


def fit_member(config, images, labels, seed=None, **options):
    """One member of family `config.model` alone (seed: config.seed): its model and Keras history."""
    nets, histories = train.fit_members(config, (images, labels), [(config.model, config.seed if seed is None else
                                                                    seed)], **options)
    return nets[0], histories[0]


def test_one_fit_step_learns_and_records_history(sample_frames):
    train_frame, _ = sample_frames
    images, labels = data.to_images(train_frame.iloc[:64]), train_frame["label"].to_numpy()[:64]
    ended = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ended.append(epoch))
    net, history = fit_member(TINY, images, labels, validation=(images[:16], labels[:16]), callbacks=[clock])
    assert ended == [0]  # extra callbacks run beside the schedule's
    assert set(history) >= {"loss", "accuracy", "val_accuracy", "learning_rate"}
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    assert np.allclose(history["learning_rate"], [TINY.learning_rate])
    probabilities = train.predict(net, images[:5], tta=4)
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    # a batch at a time, the last one short, gives what Keras's predict gives for the whole array
    assert np.allclose(train.predict(net, images[:10], batch_size=4), net.predict(images[:10], verbose=0), atol=1e-6)


def test_fit_member_passes_seed_and_determinism(monkeypatch):
    calls = []
    monkeypatch.setattr(devices, "set_seeds", lambda seed, deterministic=True: calls.append((seed, deterministic)))
    x, y = np.zeros((8, 28, 28, 1), np.float32), np.arange(8) % 10
    fit_member(dataclasses.replace(TINY, deterministic=False, model="lenet"), x, y, seed=7)
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


@pytest.mark.slow
def test_min_steps_adds_epochs_when_the_rows_are_few(sample_frames):
    train_frame, _ = sample_frames
    images, labels = data.to_images(train_frame.iloc[:32]), train_frame["label"].to_numpy()[:32]
    config = dataclasses.replace(TINY, model="lenet", min_steps=5)  # 2 steps an epoch: 3 epochs make 6 steps
    _, history = fit_member(config, images, labels)
    assert len(history["loss"]) == 3
    _, history = fit_member(dataclasses.replace(config, epochs=4), images, labels)
    assert len(history["loss"]) == 4  # never fewer than asked


def test_precision_choice():
    assert devices.precision(Config(), "gpu") == "mixed_float16"
    assert devices.precision(Config(precision="float32"), "gpu") == "float32"
    assert devices.precision(Config(), "cpu") in ("mixed_bfloat16", "float32")


def test_ema_is_an_optimizer_option():
    optimizer = train.make_optimizer(dataclasses.replace(TINY, ema=0.99), 1e-3)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99
    assert not train.make_optimizer(TINY, 1e-3).use_ema


def test_ema_is_capped_to_a_fifth_of_a_short_fit_and_says_so():
    config = dataclasses.replace(TINY, ema=0.999, batch_size=32)
    assert train.averaged_momentum(config, steps=50_000) == 0.999  # the gpu preset's fit: as asked
    assert train.averaged_momentum(config, steps=30) == pytest.approx(1 - 5 / 30)
    assert train.averaged_momentum(config, steps=4) == 0.0  # too short to average at all
    assert train.ema_note(config, rows=6000 * 32) is None  # 6,000 steps: 1,000 is less than a fifth
    assert train.ema_note(dataclasses.replace(config, epochs=3), rows=320) == (
        "ema: --ema 0.999 spans about 1000 steps, more than a fifth of a member's 30: averaging with 0.833 instead")
    assert train.ema_note(TINY, rows=320) is None


@pytest.mark.slow
def test_a_short_fit_with_ema_keeps_what_it_learned(sample_frames):
    """Keras's average has no warm-up: 0.999 over these 30 steps would keep the first step's weights (about a
    quarter of the training rows right); capped, the member is as good as without the average."""
    train_frame, _ = sample_frames
    rows = train_frame.sample(300, random_state=0)
    images, labels = data.to_images(rows), rows["label"].to_numpy()
    config = dataclasses.replace(TINY, model="lenet", epochs=3, batch_size=32, ema=0.999)
    net, _ = fit_member(config, images, labels)
    assert np.mean(train.predict(net, images).argmax(axis=1) == labels) > 0.8


def run_script(script: str, **env):
    """Runs `script` in a fresh Python (a backend and its devices are fixed at first import) and expects 'ok'."""
    done = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")


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
        f"config = Config(model='bn', epochs=1, batch_size=16, verbose=0, precision='float32', affine='{affine}')\n"
        "(net,), (h,) = train.fit_members(config, (x, y), [('bn', 42)])\n"
        "assert keras.backend.backend() != 'tensorflow' and np.isfinite(h['loss'][0])\n"
        # the augmentation layers must not switch jit off: eager steps ran 200x slower on a GPU
        "assert keras.backend.backend() != 'jax' or net.jit_compile is True\n"
        "print('ok', keras.backend.backend())\n"
    )
    run_script(script, KERAS_BACKEND=other_backend())


def test_label_smoothing_spreads_the_target():
    probabilities = np.full((1, 10), 0.1, np.float32)
    plain = train.loss_function(TINY)
    assert plain == "sparse_categorical_crossentropy"
    smoothed = train.loss_function(dataclasses.replace(TINY, label_smoothing=0.1))
    uniform = float(keras.ops.mean(smoothed(np.array([3]), probabilities)))
    assert np.isclose(uniform, np.log(10), atol=1e-4)  # any target mix against a uniform guess costs log 10
    confident = np.eye(10, dtype=np.float32)[[3]] * 0.99 + 0.001
    assert float(keras.ops.mean(smoothed(np.array([3]), confident))) > 0.3  # smoothing penalises certainty


@pytest.mark.slow
def test_a_stacked_member_trains_as_it_would_alone(sample_frames):
    """Side by side in one model, the first member is the member trained alone, weight for weight: its own
    initialisation, augmentation and dropout draws, and the gradient of its own loss only."""
    train_frame, _ = sample_frames
    images, labels = data.to_images(train_frame.iloc[:64]), train_frame["label"].to_numpy()[:64]
    config = dataclasses.replace(TINY, epochs=2)  # the recipe's augmentation and dropout, in float32
    alone, alone_history = fit_member(config, images, labels, seed=42, monitor=(images[:8], labels[:8]))
    nets, histories = train.fit_members(config, (images, labels), [("bn", 42), ("lenet", 1042)],
                                        monitor=(images[:8], labels[:8]))
    assert [net.name for net in nets] == ["bn_42", "lenet_1042"]
    assert np.allclose(train.predict(nets[0], images), train.predict(alone, images), atol=1e-5)
    assert not np.allclose(train.predict(nets[1], images), train.predict(alone, images), atol=1e-3)
    for history in histories:
        assert set(history) == set(alone_history) and len(history["loss"]) == 2
    assert np.allclose(histories[0]["val_accuracy"], alone_history["val_accuracy"])


def test_a_branch_moves_only_with_its_own_loss():
    branches = [models.build_model(Config(model=family), name=family) for family in ("lenet", "bn")]
    net = train.stacked(branches)
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss={"lenet": "sparse_categorical_crossentropy",
                                                           "bn": "sparse_categorical_crossentropy"},
                loss_weights={"lenet": 1.0, "bn": 0.0})  # bn's loss counts for nothing
    before = [[keras.ops.convert_to_numpy(w) for w in branch.trainable_weights] for branch in branches]
    x, y = np.random.default_rng(0).random((16, 28, 28, 1), np.float32), np.arange(16) % 10
    net.fit(x, {"lenet": y, "bn": y}, batch_size=16, epochs=1, verbose=0)
    after = [[keras.ops.convert_to_numpy(w) for w in branch.trainable_weights] for branch in branches]
    assert not all(np.array_equal(b, a) for b, a in zip(before[0], after[0]))
    assert all(np.array_equal(b, a) for b, a in zip(before[1], after[1]))


def test_branch_history_takes_one_members_keys():
    history = {"loss": [3.0], "bn_42_loss": [1.0], "bn_42_accuracy": [0.5], "val_bn_42_accuracy": [0.6],
               "bn_4210_loss": [2.0], "val_loss": [3.5]}
    assert train.branch_history(history, "bn_42") == {"loss": [1.0], "accuracy": [0.5], "val_accuracy": [0.6]}


def test_a_loss_that_is_not_a_number_stops_the_run():
    train.check_finite([2.3, 1.1], TINY, [("bn", 42)])
    with pytest.raises(ValueError, match=r"training bn \(seed 42\): the loss became nan in epoch 2, .* "
                                         r"--learning-rate 0.003 is likely too high"):
        train.check_finite([2.3, float("nan")], TINY, [("bn", 42)])
