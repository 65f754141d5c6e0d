"""The time budget (--budget-minutes) a share of the ensemble trains against.

A share trains its groups of members one after another. `Timetable` answers "may this group start", makes the
forecast and records what the budget cut; `Budget`, the Keras callback it hands each group's fit, answers "may
another epoch run". Families differ in speed, so groups are timed by kind (their families): the first group of
each kind foresees, after its second epoch (the first also compiles), how long all the groups will take, and each
kind's last group says whether the next of that kind fits. A member the budget stops mid-fit still predicts: a
run killed at its session's end writes nothing.
"""

import dataclasses
import functools
import time

import keras


@dataclasses.dataclass(frozen=True)
class Clock:
    """What a share trains against."""
    deadline: float | None = None  # time.time() by which training and predicting must end; None: no budget
    group_seconds: float | None = None  # a group's seconds measured in an earlier round: the first group's gate


@dataclasses.dataclass
class Account:
    """What the budget foresaw and cut, for one share or, merged, for a whole ensemble."""
    estimate_seconds: float | None = None  # training and predicting, foreseen from the first epochs (slowest share)
    group_seconds: float | None = None  # the last group's training and predicting (slowest share)
    stopped: list = dataclasses.field(default_factory=list)  # each time it cut training or left members out, why
    cut_short: list = dataclasses.field(default_factory=list)  # members (k) it stopped before their last epoch

    @classmethod
    def merged(cls, accounts) -> "Account":
        accounts = list(accounts)
        return cls(max((a.estimate_seconds for a in accounts if a.estimate_seconds), default=None),
                   max((a.group_seconds for a in accounts if a.group_seconds), default=None),
                   [why for a in accounts for why in a.stopped], sorted(m for a in accounts for m in a.cut_short))


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def named(members) -> str:
    """'member 3' or 'members 3, 4': members k as the log numbers them, from 1."""
    return "member" + ("s " if len(members) > 1 else " ") + ", ".join(str(m + 1) for m in members)


class Budget(keras.callbacks.Callback):
    """Times a group's epochs. After the second it hands `foresee` the epochs, the first epoch's seconds, a steady
    epoch's and the whole group's, predictions included. At any epoch's end it stops training when another epoch
    and the group's predictions would end past `deadline` (time.time()). `predicting` is the images the group
    will predict per image it trains on in an epoch; a prediction costs about a third of a training step."""

    def __init__(self, deadline, log, foresee=None, predicting: float = 0.0):
        super().__init__()
        self.deadline, self.log, self.foresee, self.predicting = deadline, log, foresee, predicting
        self.seconds, self.stopped, self.begun = [], None, None

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


class Timetable:
    """One share's groups against its Clock: the gate before each group, the epoch callback for its fit, the
    forecast, the pace after each group, and its `account` of them."""

    def __init__(self, kinds: list, clock: Clock, rounds: int = 1, log=print):
        self.kinds, self.clock, self.rounds, self.log = kinds, clock, rounds, log
        self.opened = time.time()
        self.foreseen, self.took = {}, {}  # a kind -> its seconds foreseen by its first group, measured by its last
        self.account = Account(group_seconds=clock.group_seconds)

    def may_start(self, number: int, group: list) -> bool:
        """Whether group `number` would end in time, by its kind's last time (else the last group's)."""
        expected = self.took.get(self.kinds[number], self.account.group_seconds)
        if self.clock.deadline and expected and time.time() + expected > self.clock.deadline:
            self.account.stopped.append(f"budget: not training {named(group)} or later ones: a group takes about "
                                        f"{duration(expected)} and would end past the budget")
            self.log(self.account.stopped[-1])
            return False
        return True

    def callback(self, number: int, predicting: float) -> Budget:
        """The callback for group `number`'s fit; the first group of its kind makes the forecast."""
        kind = self.kinds[number]
        foresee = None if kind in self.foreseen else functools.partial(self.foresee, kind)
        return Budget(self.clock.deadline, self.log, foresee, predicting)

    def foresee(self, kind, epochs, first, steady, seconds):
        self.foreseen[kind] = seconds
        # every group builds and compiles its own model, so each pays the first epoch's extra
        total = self.rounds * sum(self.foreseen.get(other, seconds) for other in self.kinds)
        self.account.estimate_seconds = total
        untimed = [" + ".join(other) for other in dict.fromkeys(self.kinds) if other not in self.foreseen]
        rounds = " (two rounds: --pseudo)" if self.rounds == 2 else ""
        self.log(f"budget: an epoch of {' + '.join(kind)} takes {steady:.1f} s here (the first {first:.1f} s); "
                 f"{len(self.kinds)} group(s) of {epochs} epochs{rounds} will train and predict for about "
                 f"{duration(total)}"
                 + (f" (groups of {', '.join(untimed)} not timed yet: counted as this one)" if untimed else ""))

    def ended(self, number: int, group: list, callback: Budget, seconds: float):
        """Group `number` took `seconds`, training and predicting: recorded, and the pace of the rest said."""
        if callback.stopped:
            self.account.stopped.append(callback.stopped)
            self.account.cut_short += group
        self.account.group_seconds = self.took[self.kinds[number]] = seconds
        spent, rest = time.time() - self.opened, self.kinds[number + 1:]
        if rest:
            more = sum(self.took.get(other, spent / (number + 1)) for other in rest)
            self.log(f"budget: {number + 1} of {len(self.kinds)} groups in {spent / 60:.1f} min; the other "
                     f"{len(rest)} at the pace of their kind so far: about {duration(more)} more")
