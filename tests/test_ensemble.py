import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from digit_recognizer import data, ensemble, predictions, train, workers
from digit_recognizer.budget import Account, Budget, Deadline
from digit_recognizer.data import Rows
from digit_recognizer.config import Config

TINY = Config(model="lenet", members=1, epochs=1, batch_size=16, verbose=0, precision="float32", tta=0,
              deterministic=True)


class Constant:
    """A stand-in model whose softmax is fixed: lets the ensemble's averaging be checked exactly."""

    def __init__(self, digit):
        self.digit = digit

    def predict_on_batch(self, images):
        out = np.full((len(images), 10), 0.05, np.float32)
        out[:, self.digit] = 0.55
        return out


def test_ensemble_averages_member_softmaxes(monkeypatch):
    monkeypatch.setattr(train, "fit_members", constant_members([1, 1, 7]))
    images = np.zeros((20, 28, 28, 1), np.float32)
    labels = np.array([1] * 10 + [7] * 10)
    config = dataclasses.replace(TINY, members=3, validation=0.2)
    result = ensemble.train_ensemble(config, Rows(images, labels, images[:4], (images[:4], np.array([1, 1, 7, 7]))),
                                     log=lambda *_: None)
    assert np.allclose(result.test_probabilities[0, [1, 7]], [(0.55 * 2 + 0.05) / 3, (0.05 * 2 + 0.55) / 3])
    assert result.member_accuracy == [0.5, 0.5, 0.5]
    assert result.ensemble_accuracy == 0.5
    assert len(result.histories) == 3 and result.images_per_second > 0


def test_members_alternate_families_and_seeds(monkeypatch):
    seen = []

    def fake_fit(config, training, members, validation=None, monitor=None, callbacks=()):
        seen.extend((family, seed, validation is None, monitor is not None) for family, seed in members)
        return [Constant(1)] * len(members), [{"loss": [0.0]}] * len(members)

    monkeypatch.setattr(train, "fit_members", fake_fit)
    images, labels = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 2
    config = dataclasses.replace(TINY, model="bn+deep", members=3)
    ensemble.train_ensemble(config, Rows(images, labels, images[:2], (images[:2], labels[:2])), log=lambda *_: None)
    assert seen == [("bn", 42, True, True), ("deep", 1042, True, True), ("bn", 2042, True, True)]


def test_pseudo_labels_add_confident_test_images(monkeypatch):
    trained_on = []

    def fake_fit(config, training, members, validation=None, monitor=None, callbacks=()):
        trained_on.append(len(training[0]))
        return [Constant(7)], [{"loss": [0.0]}]  # 0.55 sure of a 7 for every image

    monkeypatch.setattr(train, "fit_members", fake_fit)
    images, labels, test = np.zeros((20, 28, 28, 1), np.float32), np.arange(20) % 2, np.zeros((6, 28, 28, 1))
    quiet = dict(log=lambda *_: None)
    ensemble.train_members(dataclasses.replace(TINY, pseudo=0.6), Rows(images, labels, test), **quiet)
    assert trained_on == [20]  # nobody at 0.6: no second round
    trained_on.clear()
    result = ensemble.train_members(dataclasses.replace(TINY, pseudo=0.5), Rows(images, labels, test), **quiet)
    assert trained_on == [20, 26] and len(result.histories) == 2
    trained_on.clear()
    ensemble.train_members(TINY, Rows(images, labels, test), **quiet)
    assert trained_on == [20]


def test_pseudo_labelled_appends_only_the_sure_test_images_with_their_class():
    images, labels = np.zeros((3, 28, 28, 1)), np.array([4, 5, 6])
    test = np.arange(4, dtype=np.float32)[:, None, None, None] * np.ones((4, 28, 28, 1))
    probabilities = np.full((4, 10), 0.01)
    probabilities[[0, 2, 3], [9, 1, 2]] = [0.999, 0.9989, 0.9995]
    taught = ensemble.pseudo_labelled(Config(pseudo=0.999), Rows(images, labels, test), probabilities,
                                      log=lambda *_: None)
    taught_images, taught_labels = taught.images, taught.labels
    assert taught_labels.tolist() == [4, 5, 6, 9, 2]
    assert taught_images.shape == (5, 28, 28, 1) and taught_images[3:, 0, 0, 0].tolist() == [0.0, 3.0]


def test_pseudo_run_keeps_the_first_rounds_hold_out_scores(monkeypatch, tmp_path):
    # round one reads every image as a 7, round two as a 3
    monkeypatch.setattr(train, "fit_members", constant_members([7, 3]))
    images, labels, test = np.zeros((20, 28, 28, 1), np.float32), np.full(20, 3), np.zeros((6, 28, 28, 1))
    holdout = (np.zeros((4, 28, 28, 1), np.float32), np.full(4, 3))
    result = ensemble.train_members(dataclasses.replace(TINY, pseudo=0.5), Rows(images, labels, test, holdout),
                                    log=lambda *_: None)
    assert result.first_round.ensemble_accuracy == 0.0 and result.ensemble_accuracy == 1.0
    saved = np.load(predictions.write_holdout(tmp_path, TINY, result, np.arange(4), holdout[1]))
    assert saved["members"].shape == saved["first_round_members"].shape == (1, 4, 10)
    assert (saved["members"].argmax(-1) == 3).all() and (saved["first_round_members"].argmax(-1) == 7).all()


def constant_members(digits):
    """A stand-in for train.fit_members whose members read every image as the next of `digits`."""
    digits = iter(digits)

    def fit_members(config, training, members, validation=None, monitor=None, callbacks=()):
        return [Constant(next(digits)) for _ in members], [{"loss": [0.0]} for _ in members]
    return fit_members


def test_members_per_step_trains_groups_and_keeps_members_apart(monkeypatch):
    groups = []

    def fake_fit(config, training, members, validation=None, monitor=None, callbacks=()):
        groups.append(members)
        return [Constant(7 if seed == 1042 else 1) for _, seed in members], [{"loss": [0.0]}] * len(members)

    monkeypatch.setattr(train, "fit_members", fake_fit)
    images, labels = np.zeros((20, 28, 28, 1), np.float32), np.full(20, 1)
    config = dataclasses.replace(TINY, model="bn+deep", members=3, members_per_step=2)
    result = ensemble.train_ensemble(config, Rows(images, labels, images[:2], (images[:4], np.full(4, 1))),
                                     log=lambda *_: None)
    assert groups == [[("bn", 42), ("deep", 1042)], [("bn", 2042)]]
    assert result.member_accuracy == [1.0, 0.0, 1.0] and result.member_indices == [0, 1, 2]


class Clock:
    """time.time for the ensemble, moved by hand (`step`: by a fake fit)."""

    def __init__(self, step):
        self.now, self.step = 1000.0, step

    def __call__(self):
        return self.now


def ten_seconds_a_fit(monkeypatch, digits):
    """constant_members(digits) as train.fit_members, each call moving the ensemble's clock 10 s on from 1000."""
    clock, fit = Clock(10.0), constant_members(digits)
    monkeypatch.setattr(ensemble.time, "time", clock)

    def slow_fit(*args, **kwargs):
        clock.now += clock.step
        return fit(*args, **kwargs)
    monkeypatch.setattr(train, "fit_members", slow_fit)


def test_budget_stops_adding_members_and_the_run_keeps_the_ones_it_has(monkeypatch):
    ten_seconds_a_fit(monkeypatch, [1, 1, 7, 7])
    images, labels, lines = np.zeros((20, 28, 28, 1), np.float32), np.full(20, 1), []
    result = ensemble.train_ensemble(dataclasses.replace(TINY, members=4),
                                     Rows(images, labels, images[:2], (images[:4], np.full(4, 1))),
                                     log=lines.append, clock=Deadline(1025.0))
    # member 1 ends at 1010, member 2 at 1020; member 3 would end at 1030, past 1025
    assert result.member_accuracy == [1.0, 1.0] and result.member_indices == [0, 1]
    assert result.budget.stopped == [lines[-1]] and "not training member 3 or later" in lines[-1]


def test_a_pseudo_label_round_past_the_budget_leaves_the_first_rounds_members(monkeypatch):
    ten_seconds_a_fit(monkeypatch, [1, 7])  # the first round reads every image as a 1, sure enough to teach
    images, labels, lines = np.zeros((20, 28, 28, 1), np.float32), np.full(20, 1), []
    # the first round's one member ends at 1010; a second round's would end at 1020, past 1015
    result = ensemble.train_members(dataclasses.replace(TINY, pseudo=0.5),
                                    Rows(images, labels, images[:2], (images[:4], np.full(4, 1))),
                                    log=lines.append, clock=Deadline(1015.0))
    assert result.first_round is None and result.member_accuracy == [1.0]
    assert result.budget.stopped == ["budget: no second (pseudo-label) round"] and "no second round" in lines[-1]


class FakeModel:
    stop_training = False


def epochs_of(budget, clock, seconds):
    """Runs the budget's Keras callback through epochs of these lengths, as fit would; returns the epochs it let
    end."""
    callback = train.BudgetCallback(budget)
    callback.set_model(FakeModel())
    callback.params = {"epochs": 5}
    ended = 0
    for epoch, length in enumerate(seconds):
        callback.on_epoch_begin(epoch)
        clock.now += length
        callback.on_epoch_end(epoch)
        ended += 1
        if callback.model.stop_training:
            break
    return ended


def test_budget_callback_foresees_the_group(monkeypatch):
    clock, foreseen = Clock(0), []
    monkeypatch.setattr(ensemble.time, "time", clock)
    # predicting 0.6 images per image trained: 0.6 / 3 of an epoch's time, 2 s
    budget = Budget(None, log=print, foresee=lambda *timed: foreseen.append(timed), predicting=0.6)
    assert epochs_of(budget, clock, [20.0, 10.0, 10.0]) == 3 and budget.stopped is None
    assert foreseen == [(5, 20.0, 10.0, 20 + 10 * 4 + 2)]  # once, after the second epoch: the first compiles


def timed_fit(clock, seconds: dict):
    """train.fit_members whose epochs take seconds[family] for each member of the group on the ensemble's clock,
    run through the callbacks as fit would; every member reads every image as a 1."""
    def fit(config, training, members, validation=None, monitor=None, callbacks=()):
        net, ended = FakeModel(), 0
        for callback in callbacks:
            callback.set_model(net)
            callback.params = {"epochs": config.epochs}
        while ended < config.epochs and not net.stop_training:
            for callback in callbacks:
                callback.on_epoch_begin(ended)
            clock.now += sum(seconds[family] for family, _ in members)
            for callback in callbacks:
                callback.on_epoch_end(ended)
            ended += 1
        return [Constant(1)] * len(members), [{"loss": [0.0] * ended}] * len(members)
    return fit


def test_budget_times_each_family_and_skips_the_group_its_own_pace_would_overrun(monkeypatch):
    clock, lines = Clock(0), []
    monkeypatch.setattr(ensemble.time, "time", clock)
    monkeypatch.setattr(train, "fit_members", timed_fit(clock, {"bn": 10.0, "deep": 30.0}))
    config = dataclasses.replace(TINY, model="bn+deep", members=4, epochs=3)
    images, labels = np.zeros((30, 28, 28, 1), np.float32), np.full(30, 1)
    # bn groups take 30 s, deep ones 90 s, from 1000: bn to 1030, deep to 1120, bn to 1150; the last deep group
    # would end at 1240, past 1200 (by the last group's pace, bn's, it would have seemed to fit)
    result = ensemble.train_ensemble(config, Rows(images, labels, images[:3]), log=lines.append,
                                     clock=Deadline(1200.0))
    assert result.member_indices == [0, 1, 2] and "not training member 4" in result.budget.stopped[0]
    assert result.budget.cut_short == []  # each group it started ended in time
    foreseen = [line for line in lines if "will train and predict" in line]
    # a group's predictions: 3 test images per 30 trained at a third of the time: an epoch's 1/30
    assert len(foreseen) == 2 and "groups of deep not timed yet" in foreseen[0] and "about 2.0 min" in foreseen[0]
    assert "an epoch of deep takes 30.0 s" in foreseen[1] and "not timed" not in foreseen[1]
    assert result.budget.estimate_seconds == pytest.approx(2 * (30 + 10 / 30) + 2 * (90 + 30 / 30))
    paces = [line for line in lines if "at the pace of their kind" in line]
    assert "about 90 s more" in paces[0] and "about 2.0 min more" in paces[1]


def test_members_the_budget_stops_mid_fit_are_kept_and_named(monkeypatch):
    clock = Clock(0)
    monkeypatch.setattr(ensemble.time, "time", clock)
    monkeypatch.setattr(train, "fit_members", timed_fit(clock, {"bn": 10.0}))
    config = dataclasses.replace(TINY, model="bn", members=3, members_per_step=2, epochs=3)
    images, labels = np.zeros((30, 28, 28, 1), np.float32), np.full(30, 1)
    # members 1 and 2 side by side: an epoch takes 20 s, so at 1020 another would end past 1035
    result = ensemble.train_ensemble(config, Rows(images, labels, images[:3]), log=lambda line: None,
                                     clock=Deadline(1035.0))
    assert result.member_indices == [0, 1] and result.budget.cut_short == [0, 1]
    stopped = result.budget.stopped
    assert "stopped training after epoch 1 of 3" in stopped[0] and "not training member 3" in stopped[1]


def test_budget_callback_stops_before_an_epoch_and_predictions_would_overrun(monkeypatch):
    clock = Clock(0)
    monkeypatch.setattr(ensemble.time, "time", clock)
    # at 1020, another epoch (10 s) ends by 1030, but its predictions (2 s) would end past 1031
    budget = Budget(1031.0, log=lambda line: None, predicting=0.6)
    assert epochs_of(budget, clock, [10.0] * 5) == 2
    assert "stopped training after epoch 2 of 5" in budget.stopped
    clock.now = 1000.0  # without predictions to make, that third epoch fits
    budget = Budget(1031.0, log=lambda line: None)
    assert epochs_of(budget, clock, [10.0] * 5) == 3


def test_workers_are_one_per_gpu_and_deal_groups_round_robin(monkeypatch):
    monkeypatch.setattr(ensemble.devices, "visible_gpus", lambda: ["0", "1"])
    assert workers.gpus_for(Config(), groups=6) == ["0", "1"]
    assert workers.gpus_for(Config(), groups=1) == [None]  # one group: this process trains it
    assert workers.gpus_for(Config(workers=1), groups=6) == [None]
    monkeypatch.setattr(ensemble.devices, "visible_gpus", lambda: [])
    assert workers.gpus_for(Config(), groups=6) == [None]
    assert workers.gpus_for(Config(workers=2), groups=6) == [None, None]  # CPU processes, as in tests
    assert workers.deal([[0], [1], [2], [3], [4]], 2) == [[[0], [2], [4]], [[1], [3]]]


def test_images_per_second_of_workers_divide_by_the_slowest_workers_training():
    """Workers train at once: their images per second are of the wall clock, which the slowest one spans; two
    workers with the same members and seconds as one process are twice as fast. (That two worker processes
    make the ensemble one process makes is checked on the bundle: test_kaggle_road.py, marked slow.)"""
    def member(index, seconds):
        return ensemble.Member(index, np.full((2, 10), 0.1), None, {"loss": [0.0]}, seconds, images=100)
    shares = [ensemble.Share([member(0, 2.0), member(2, 3.0)], "cpu", "float32", Account()),
              ensemble.Share([member(1, 1.0), member(3, 1.0)], "cpu", "float32", Account())]
    apart = ensemble.combine(shares, [], None)
    alone = ensemble.combine([ensemble.Share(shares[0].members + shares[1].members, "cpu", "float32",
                                                     Account())], [], None)
    assert apart.workers == 2 and apart.member_indices == [0, 1, 2, 3] and apart.train_seconds == 7.0
    assert apart.images_per_second == 400 / 5.0 and alone.images_per_second == 400 / 7.0
    assert apart.precision == "float32"


@pytest.mark.slow
def test_a_worker_that_fails_costs_only_its_own_members(sample_frames, capsys):
    train_frame, test_frame = sample_frames
    images, labels = data.to_images(train_frame.iloc[:64]), train_frame["label"].to_numpy()[:64]
    # member 2 (worker 2's) is of a family no model has: that worker fails at once, worker 1 trains on
    config = dataclasses.replace(TINY, members=2, workers=2, model="lenet+nonesuch", rotation=0.0, zoom=0.0,
                                 shift=0.0)
    result = ensemble.train_ensemble(config, Rows(images, labels, data.to_images(test_frame.iloc[:8])),
                                     log=lambda *_: None)
    assert result.member_indices == [0] and result.test_probabilities.shape == (8, 10)
    assert len(result.failures) == 1 and result.failures[0].startswith("worker 2 failed: ")
    assert "[worker 2] failed: " in capsys.readouterr().out


def test_gpus_are_read_from_nvidia_smis_gpu_lines_and_one_the_backend_cannot_use_is_an_error(monkeypatch):
    listed = "GPU 0: Tesla T4 (UUID: GPU-a)\n  MIG 1g.5gb Device 0: (UUID: MIG-b)\nGPU 1: Tesla T4 (UUID: GPU-c)\n"
    monkeypatch.setattr(ensemble.devices.subprocess, "run", lambda *args, **kwargs: SimpleNamespace(stdout=listed))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert ensemble.devices.visible_gpus() == ["0", "1"]
    assert ensemble.devices.found() == "GPUs: 0, 1 (nvidia-smi -L)"
    monkeypatch.setattr(ensemble.devices, "gpu_count", lambda: 0)  # CUDA failed to load
    with pytest.raises(ValueError, match="nvidia-smi lists GPU 0, 1, but tensorflow found none"):
        ensemble.devices.accelerator()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU, chosen knowingly
    assert ensemble.devices.accelerator() == "cpu" and ensemble.devices.found().startswith("GPUs: none")


@pytest.mark.slow
def test_a_worker_that_fails_is_one_error():
    images = np.zeros((8, 28, 28, 1), np.float32)
    config = dataclasses.replace(TINY, members=2, workers=2, model="lenet", batch_size=0)  # unchecked: fit fails
    with pytest.raises(ValueError, match="workers: worker 1 failed: "):
        ensemble.train_ensemble(config, Rows(images, np.arange(8) % 2, images), log=lambda *_: None)
