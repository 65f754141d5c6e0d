"""The time budget (--budget-minutes): its deadline, the one a Kaggle session imposes, and the share of the
ensemble that trains against it.

A run's budget is its own, or on Kaggle the session's limit less a margin (`session_budget`), counted from the
start as a `Deadline`. A share trains its groups of members one after another. `Timetable` answers "may this
group start", makes the forecast and records what the budget cut; `Budget`, which train.fit_members asks at each
epoch (through a Keras callback), answers "may another epoch run". Families differ in speed, so groups are timed
by kind (their families): the first group of each kind foresees, after its second epoch (the first also
compiles), how long all the groups will take, and each kind's last group says whether the next of that kind fits.
A member the budget stops mid-fit still predicts: a run killed at its session's end writes nothing.
"""

import dataclasses
import functools
import os
import time

from digit_recognizer import data

SESSION_HOURS = {"gpu or cpu": 12, "tpu": 9}  # Kaggle stops a batch session there, and a cut kernel writes nothing
SESSION_MARGIN_MINUTES = 30  # of a session's limit, kept for start-up, predicting and writing the files


def session_budget(config, log=print, environ=None):
    """`config`, with a budget taken from the Kaggle session's limit when it runs on Kaggle with none of its own."""
    environ = os.environ if environ is None else environ
    if config.budget_minutes or not data.on_kaggle(environ):
        return config
    hours = SESSION_HOURS["tpu" if "TPU_NAME" in environ else "gpu or cpu"]
    minutes = 60 * hours - SESSION_MARGIN_MINUTES
    log(f"budget: none given, and a Kaggle session stops at {hours} hours, writing nothing: no member starts that "
        f"would end past {minutes} minutes (--budget-minutes to choose another)")
    return dataclasses.replace(config, budget_minutes=minutes)


@dataclasses.dataclass(frozen=True)
class Deadline:
    """What a share trains against."""
    at: float | None = None  # time.time() by which training and predicting must end; None: no budget
    group_seconds: float | None = None  # a group's seconds measured in an earlier round: the first group's gate

    @classmethod
    def of(cls, config) -> "Deadline":
        """The run's deadline, counted from now: wall-clock time, which worker processes share."""
        return cls(time.time() + 60 * config.budget_minutes if config.budget_minutes else None)


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


class Budget:
    """Times a group's epochs (`begin` and `end` of each). After the second it hands `foresee` the epochs, the
    first epoch's seconds, a steady epoch's and the whole group's, predictions included. At any epoch's end it
    says to stop training when another epoch and the group's predictions would end past `deadline` (time.time()).
    `predicting` is the images the group will predict per image it trains on in an epoch; a prediction costs
    about a third of a training step."""

    def __init__(self, deadline, log, foresee=None, predicting: float = 0.0):
        self.deadline, self.log, self.foresee, self.predicting = deadline, log, foresee, predicting
        self.seconds, self.stopped, self.begun = [], None, None

    def begin(self):
        self.begun = time.time()

    def end(self, epoch: int, epochs: int) -> bool:
        """Epoch `epoch` (from 0) of `epochs` ended: True to stop training here."""
        self.seconds.append(time.time() - self.begun)
        predict = self.seconds[-1] * self.predicting / 3
        if self.foresee and len(self.seconds) == min(2, epochs):
            first, steady = self.seconds[0], self.seconds[-1]
            self.foresee(epochs, first, steady, first + steady * (epochs - 1) + predict)
        if self.deadline and epoch + 1 < epochs and time.time() + self.seconds[-1] + predict > self.deadline:
            self.stopped = f"budget: stopped training after epoch {epoch + 1} of {epochs}: another would end past it"
            self.log(self.stopped)
            return True
        return False


class Timetable:
    """One share's groups against its Deadline: the gate before each group, the epoch budget for its fit, the
    forecast, the pace after each group, and its `account` of them."""

    def __init__(self, kinds: list, clock: Deadline, rounds: int = 1, log=print):
        self.kinds, self.clock, self.rounds, self.log = kinds, clock, rounds, log
        self.opened = time.time()
        self.foreseen, self.took = {}, {}  # a kind -> its seconds foreseen by its first group, measured by its last
        self.account = Account(group_seconds=clock.group_seconds)

    def may_start(self, number: int, group: list) -> bool:
        """Whether group `number` would end in time, by its kind's last time (else the last group's)."""
        expected = self.took.get(self.kinds[number], self.account.group_seconds)
        if self.clock.at and expected and time.time() + expected > self.clock.at:
            self.account.stopped.append(f"budget: not training {named(group)} or later ones: a group takes about "
                                        f"{duration(expected)} and would end past the budget")
            self.log(self.account.stopped[-1])
            return False
        return True

    def epoch_budget(self, number: int, predicting: float) -> Budget:
        """The epoch budget for group `number`'s fit; the first group of its kind makes the forecast."""
        kind = self.kinds[number]
        foresee = None if kind in self.foreseen else functools.partial(self.foresee, kind)
        return Budget(self.clock.at, self.log, foresee, predicting)

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
