"""The ensemble: seeded members whose softmax outputs are averaged, trained several to a step, dealt across GPUs,
within a time budget; and the pseudo-label round.

Member k has seed `seed + 1000k` and family `member_family(config, k)`. Members are trained in groups of
`members_per_step` (one model, one step for all: train.fit_members); with several GPUs the groups are dealt
across them, one worker process per GPU (workers.py). Whatever trains them, each member's predictions come back
on their own and in member order, so the ensemble is the same average.
"""

import dataclasses
import functools
import time

import keras
import numpy as np

from digit_recognizer import config as configuration, data, devices, train, workers


@dataclasses.dataclass
class Member:
    """What one trained member leaves: its predictions and how it trained."""
    index: int  # k, from 0
    test_probabilities: np.ndarray  # (test rows, 10)
    holdout_probabilities: np.ndarray | None  # (hold-out rows, 10)
    history: dict  # Keras history: loss, accuracy, learning_rate, val_* per epoch
    train_seconds: float  # its share of its group's fit
    predict_seconds: float
    images: int  # training images it saw (rows x epochs)


@dataclasses.dataclass
class Share:
    """What one process trained: its members and its account of the budget."""
    members: list
    device: str
    estimate_seconds: float | None = None  # its groups' training and predicting, foreseen from its first epochs
    group_seconds: float | None = None  # the last group's training and prediction
    stopped: list = dataclasses.field(default_factory=list)  # each time the budget cut its training short, why
    cut_short: list = dataclasses.field(default_factory=list)  # members (k) the budget stopped before their epochs


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
    estimate_seconds: float | None = None  # training and predictions, foreseen from the first epochs (slowest worker)
    group_seconds: float | None = None  # the slowest worker's last group, training and prediction
    stopped: list = dataclasses.field(default_factory=list)  # each time the budget left members out, why
    cut_short: list = dataclasses.field(default_factory=list)  # members (k) the budget stopped before their epochs
    member_indices: list = dataclasses.field(default_factory=list)  # the members' numbers k, in order
    workers: int = 1  # processes that trained them
    failures: list = dataclasses.field(default_factory=list)  # each worker that sent no members, and why


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def named(members) -> str:
    """'member 3' or 'members 3, 4': members k as the log numbers them, from 1."""
    return "member" + ("s " if len(members) > 1 else " ") + ", ".join(str(m + 1) for m in members)


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


class Budget(keras.callbacks.Callback):
    """Times a group's epochs. After the second (the first also compiles) it hands `foresee` the epochs, the
    first epoch's seconds, a steady epoch's and the whole group's, predictions included. At any epoch's end it
    stops training when another epoch and the group's predictions would end past `deadline` (time.time()): a
    member cut short still predicts, a run killed at its session's end writes nothing. `predicting` is the
    images the group will predict per image it trains on in an epoch; a prediction costs about a third of a
    training step (forward only)."""

    def __init__(self, deadline, log, foresee=None, predicting: float = 0.0):
        super().__init__()
        self.deadline, self.log, self.foresee, self.predicting = deadline, log, foresee, predicting
        self.seconds, self.stopped = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.begun = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.time() - self.begun)
        epochs = self.params["epochs"]
        predict = self.seconds[-1] * self.predicting / 3
        if self.foresee and len(self.seconds) == min(2, epochs):
            first, steady = self.seconds[0], self.seconds[-1]
            self.foresee(epochs, first, steady, first + steady * (epochs - 1) + predict)
        if self.deadline and epoch + 1 < epochs and time.time() + self.seconds[-1] + predict > self.deadline:
            self.model.stop_training = True
            self.stopped = f"budget: stopped training after epoch {epoch + 1} of {epochs}: another would end past it"
            self.log(self.stopped)


def train_share(config, groups, images, labels, test_images, holdout=None, log=print, deadline=None,
                group_seconds=None) -> Share:
    """Trains `groups` (lists of member numbers) one after another in this process, each group side by side
    (train.fit_members), and predicts with each member. Families differ in speed, so groups are timed by kind
    (their families): the first group of each kind says how long all the groups will take. With `deadline`, a
    group that would end past it (by its kind's last time, else the last group's, else `group_seconds`) is not
    started."""
    device, opened = devices.accelerator(), time.time()
    share = Share([], device, group_seconds=group_seconds)
    specs_of = [configuration.member_specs(config, group) for group in groups]  # each member's (family, seed)
    kinds = [tuple(family for family, _ in specs) for specs in specs_of]
    foreseen, took = {}, {}  # a kind of group -> its seconds foreseen by its first group, measured by its last
    rounds = 2 if config.pseudo else 1

    def foresee(kind, epochs, first, steady, seconds):
        foreseen[kind] = seconds
        # every group builds and compiles its own model, so each pays the first epoch's extra
        total = share.estimate_seconds = rounds * sum(foreseen.get(other, seconds) for other in kinds)
        untimed = [" + ".join(other) for other in dict.fromkeys(kinds) if other not in foreseen]
        log(f"budget: an epoch of {' + '.join(kind)} takes {steady:.1f} s here (the first {first:.1f} s); "
            f"{len(groups)} group(s) of {epochs} epochs" + (" (two rounds: --pseudo)" if rounds == 2 else "")
            + f" will train and predict for about {duration(total)}"
            + (f" (groups of {', '.join(untimed)} not timed yet: counted as this one)" if untimed else ""))

    for number, (group, specs, kind) in enumerate(zip(groups, specs_of, kinds)):
        expected = took.get(kind, share.group_seconds)
        if deadline and expected and time.time() + expected > deadline:
            share.stopped.append(f"budget: not training {named(group)} or later ones: a group takes about "
                                 f"{duration(expected)} and would end past the budget")
            log(share.stopped[-1])
            break
        began = time.time()
        # one member alone may hold out its own validation rows; side by side they train on the same rows
        kept, checked = data.split(labels, config.validation, specs[0][1], "--validation")
        validation = (images[checked], labels[checked]) if len(checked) else None
        for m, (family, seed) in zip(group, specs):
            log(f"member {m + 1}/{config.members}: {family}, seed {seed}, {len(kept)} training rows")
        if number == 0 and (note := train.ema_note(config, len(kept))):
            log(note)
        views = 1 + config.tta
        predicting = views * (len(test_images) + (0 if holdout is None else len(holdout[0]))) / len(kept)
        clock = Budget(deadline, log, None if kind in foreseen else functools.partial(foresee, kind), predicting)
        nets, histories = train.fit_members(config, images[kept], labels[kept], specs, validation, device,
                                            monitor=holdout, callbacks=[clock])
        fit_seconds = time.time() - began
        if clock.stopped:
            share.stopped.append(clock.stopped)
            share.cut_short += group
        for m, net, history in zip(group, nets, histories):
            started = time.time()
            tested = train.predict(net, test_images, config.tta)
            held = None if holdout is None else train.predict(net, holdout[0], config.tta)
            if held is not None:
                log(f"member {m + 1}: hold-out accuracy {accuracy(held, holdout[1]):.5f}")
            share.members.append(Member(m, tested, held, history, fit_seconds / len(group),
                                        time.time() - started, len(kept) * len(history["loss"])))
        keras.backend.clear_session()  # free the graph before the next group
        share.group_seconds = took[kind] = time.time() - began
        spent, rest = time.time() - opened, kinds[number + 1:]
        if rest:
            more = sum(took.get(other, spent / (number + 1)) for other in rest)
            log(f"budget: {number + 1} of {len(groups)} groups in {spent / 60:.1f} min; the other {len(rest)} at "
                f"the pace of their kind so far: about {duration(more)} more")
    return share


def train_ensemble(config, images, labels, test_images, holdout=None, log=print, deadline=None,
                   group_seconds=None) -> Result | None:
    """`config.members` members, each with its own seed and (with config.validation) its own validation split;
    `holdout` (images, labels), never trained on, measures each member and the average of their softmaxes. None
    when the budget left no member to train: only with `group_seconds` (a round after the first)."""
    size = config.members_per_step
    groups = [list(range(start, min(start + size, config.members))) for start in range(0, config.members, size)]
    gpus = workers.gpus_for(config, len(groups))
    if len(gpus) > 1:
        shares, failures = workers.train_shares(gpus, config, groups, images, labels, test_images, holdout,
                                                deadline, group_seconds)
    else:
        shares = [train_share(config, groups, images, labels, test_images, holdout, log, deadline, group_seconds)]
        failures = []
    members = sorted((member for share in shares for member in share.members), key=lambda member: member.index)
    if not members:
        return None
    holdout_mean = None
    if holdout is not None:
        holdout_mean = np.sum([m.holdout_probabilities for m in members], axis=0, dtype=np.float64) / len(members)
    train_seconds = sum(m.train_seconds for m in members)
    # workers train at once: images per second of the wall clock, which the slowest worker's training spans
    wall_seconds = max(sum(m.train_seconds for m in share.members) for share in shares)
    return Result(
        test_probabilities=np.sum([m.test_probabilities for m in members], axis=0, dtype=np.float64) / len(members),
        holdout_probabilities=holdout_mean,
        member_accuracy=[] if holdout is None else [accuracy(m.holdout_probabilities, holdout[1]) for m in members],
        ensemble_accuracy=None if holdout is None else accuracy(holdout_mean, holdout[1]),
        histories=[m.history for m in members],
        train_seconds=train_seconds,
        predict_seconds=sum(m.predict_seconds for m in members),
        images_per_second=sum(m.images for m in members) / wall_seconds,
        device=shares[0].device,
        precision=devices.precision(config, shares[0].device),
        member_holdout_probabilities=[] if holdout is None else [m.holdout_probabilities for m in members],
        estimate_seconds=max((s.estimate_seconds for s in shares if s.estimate_seconds), default=None),
        group_seconds=max((s.group_seconds for s in shares if s.group_seconds), default=None),
        stopped=[why for share in shares for why in share.stopped],
        cut_short=sorted(m for share in shares for m in share.cut_short),
        member_indices=[m.index for m in members],
        workers=len(shares) + len(failures),
        failures=failures,
    )


def pseudo_labelled(config, images, labels, test_images, test_probabilities, log=print):
    """The training rows plus the test images that `test_probabilities` (an ensemble's) gives a class with at
    least `config.pseudo` confidence, labelled with that class."""
    confident = np.flatnonzero(test_probabilities.max(axis=1) >= config.pseudo)
    log(f"pseudo-labels: {len(confident)} of {len(test_images)} test images at confidence >= {config.pseudo}")
    guesses = test_probabilities[confident].argmax(axis=1)
    return np.concatenate([images, test_images[confident]]), np.concatenate([labels, guesses])


def train_members(config, images, labels, test_images, holdout=None, log=print, deadline=None) -> Result:
    """The ensemble; with `config.pseudo`, a second ensemble that also learns the test images the first one
    labelled with at least that confidence. Legitimate here: the test images are given, their labels are not.
    `deadline` (time.time(), from --budget-minutes) holds for both rounds."""
    first = train_ensemble(config, images, labels, test_images, holdout, log, deadline)
    if not config.pseudo:
        return first
    log(f"first-round hold-out {first.ensemble_accuracy}")
    taught_images, taught_labels = pseudo_labelled(config, images, labels, test_images, first.test_probabilities, log)
    if len(taught_labels) == len(labels):
        return first
    second = train_ensemble(config, taught_images, taught_labels, test_images, holdout, log, deadline,
                            first.group_seconds)
    if second is None:
        log("budget: no second round: it would end past the budget; the first round's members write the submission")
        first.stopped.append("budget: no second (pseudo-label) round")
        return first
    second.histories = first.histories + second.histories
    second.train_seconds += first.train_seconds
    second.predict_seconds += first.predict_seconds
    second.stopped = first.stopped + second.stopped
    second.failures = first.failures + second.failures
    second.first_round = first
    return second
