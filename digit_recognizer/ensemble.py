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
from digit_recognizer.budget import Account, Deadline, Timetable


@dataclasses.dataclass
class Member:
    """What one trained member leaves: its predictions and how it trained."""
    index: int  # k, from 0
    test_probabilities: np.ndarray  # (test rows, 10)
    holdout_probabilities: np.ndarray | None  # (hold-out rows, 10)
    history: dict  # Keras history: loss, accuracy, learning_rate, val_* per epoch
    train_seconds: float  # its share of its group's fit
    images: int  # training images it saw (rows x epochs)


@dataclasses.dataclass
class Share:
    """What one process trained: its members and its account of the budget."""
    members: list
    device: str
    precision: str  # the dtype policy it trained in: decided once, for the share
    budget: Account  # what the budget foresaw and cut


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
    # with --pseudo, the first round's Result (the fields above are the second's), to tell what the round gained
    first_round: "Result | None" = None
    budget: Account = dataclasses.field(default_factory=Account)  # what the budget foresaw and cut, all shares
    member_indices: list = dataclasses.field(default_factory=list)  # the members' numbers k, in order
    workers: int = 1  # processes that trained them
    failures: list = dataclasses.field(default_factory=list)  # each worker that sent no members, and why


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def train_share(config, groups, rows: data.Rows, clock=Deadline(), log=print) -> Share:
    """Trains `groups` (lists of member numbers) one after another in this process, each group side by side
    (train.fit_members), and predicts with each member, within `clock` (budget.Timetable)."""
    device = devices.accelerator()
    config = dataclasses.replace(config, precision=devices.precision(config, device))  # decided here, once
    specs_of = [configuration.member_specs(config, group) for group in groups]  # each member's (family, seed)
    timetable = Timetable([tuple(family for family, _ in specs) for specs in specs_of], clock,
                          2 if config.pseudo else 1, log)
    members = []
    for number, (group, specs) in enumerate(zip(groups, specs_of)):
        if not timetable.may_start(number, group):
            break
        began = time.time()
        kept, validation = group_rows(config, rows, specs[0][1])
        for m, (family, seed) in zip(group, specs):
            log(f"member {m + 1}/{config.members}: {family}, seed {seed}, {len(kept)} training rows")
        if number == 0 and (note := train.ema_note(config, len(kept))):
            log(note)
        held_rows = 0 if rows.holdout is None else len(rows.holdout[0])
        gate = timetable.epoch_budget(number, (1 + config.tta) * (len(rows.test_images) + held_rows) / len(kept))
        nets, histories = train.fit_members(config, (rows.images[kept], rows.labels[kept]), specs, validation,
                                            monitor=rows.holdout, callbacks=[train.BudgetCallback(gate)])
        fit_seconds = time.time() - began
        for m, net, history in zip(group, nets, histories):
            tested, held = predict_member(config, m, net, rows, log)
            members.append(Member(m, tested, held, history, fit_seconds / len(group), len(kept) * len(history["loss"])))
        keras.backend.clear_session()  # free the graph before the next group
        timetable.ended(number, group, gate, time.time() - began)
    return Share(members, device, config.precision, timetable.account)


def group_rows(config, rows: data.Rows, seed: int):
    """The rows (numbers) a group trains on and its validation (images, labels) or None: one member alone may
    hold out its own --validation rows; side by side they train on the same rows."""
    kept, checked = data.split(rows.labels, config.validation, seed, "--validation")
    return kept, ((rows.images[checked], rows.labels[checked]) if len(checked) else None)


def predict_member(config, index: int, net, rows: data.Rows, log):
    """Member `index`'s softmax on the test images and on the hold-out (or None), with TTA."""
    tested = train.predict(net, rows.test_images, config.tta)
    held = None if rows.holdout is None else train.predict(net, rows.holdout[0], config.tta)
    if held is not None:
        log(f"member {index + 1}: hold-out accuracy {accuracy(held, rows.holdout[1]):.5f}")
    return tested, held


def train_ensemble(config, rows: data.Rows, clock=Deadline(), log=print) -> Result | None:
    """`config.members` members, each with its own seed and (with config.validation) its own validation split;
    `rows.holdout`, never trained on, measures each member and the average of their softmaxes. With several
    GPUs the groups are dealt to one worker process each. None when the budget left no member to train: only
    with `clock.group_seconds` (a round after the first)."""
    size = config.members_per_step
    groups = [list(range(start, min(start + size, config.members))) for start in range(0, config.members, size)]
    gpus = workers.gpus_for(config, len(groups))
    if len(gpus) > 1:
        work = functools.partial(train_share, config, rows=rows, clock=clock)
        shares, failures = workers.train_shares(gpus, groups, work)
    else:
        shares, failures = [train_share(config, groups, rows, clock, log)], []
    return combine(shares, failures, rows.holdout)


def combine(shares: list, failures: list, holdout) -> Result | None:
    """The ensemble of the members the shares trained: their average, scored on `holdout`; None without one."""
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
        images_per_second=sum(m.images for m in members) / wall_seconds,
        device=shares[0].device,
        precision=shares[0].precision,
        member_holdout_probabilities=[] if holdout is None else [m.holdout_probabilities for m in members],
        budget=Account.merged(share.budget for share in shares),
        member_indices=[m.index for m in members],
        workers=len(shares) + len(failures),
        failures=failures,
    )


def pseudo_labelled(config, rows: data.Rows, test_probabilities, log=print) -> data.Rows:
    """`rows` whose training rows also hold the test images that `test_probabilities` (an ensemble's) gives a
    class with at least `config.pseudo` confidence, labelled with that class."""
    confident = np.flatnonzero(test_probabilities.max(axis=1) >= config.pseudo)
    log(f"pseudo-labels: {len(confident)} of {len(rows.test_images)} test images at confidence >= {config.pseudo}")
    guesses = test_probabilities[confident].argmax(axis=1)
    return dataclasses.replace(rows, images=np.concatenate([rows.images, rows.test_images[confident]]),
                               labels=np.concatenate([rows.labels, guesses]))


def train_members(config, rows: data.Rows, clock=Deadline(), log=print) -> Result:
    """The ensemble; with `config.pseudo`, a second ensemble that also learns the test images the first one
    labelled with at least that confidence. Legitimate here: the test images are given, their labels are not.
    `clock.at` (time.time(), from --budget-minutes) holds for both rounds."""
    first = train_ensemble(config, rows, clock, log)
    if not config.pseudo:
        return first
    log(f"first-round hold-out {first.ensemble_accuracy}")
    taught = pseudo_labelled(config, rows, first.test_probabilities, log)
    if len(taught.labels) == len(rows.labels):
        return first
    second = train_ensemble(config, taught, Deadline(clock.at, first.budget.group_seconds), log)
    if second is None:
        log("budget: no second round: it would end past the budget; the first round's members write the submission")
        stopped = first.budget.stopped + ["budget: no second (pseudo-label) round"]
        return dataclasses.replace(first, budget=dataclasses.replace(first.budget, stopped=stopped))
    return dataclasses.replace(second, histories=first.histories + second.histories,
                               train_seconds=first.train_seconds + second.train_seconds,
                               budget=dataclasses.replace(second.budget, stopped=first.budget.stopped
                                                          + second.budget.stopped),
                               failures=first.failures + second.failures, first_round=first)
