"""Several Kaggle sessions, one submission: `push.py run --sessions N`, and `push.py collect FOLDER` after it.

One session is a ceiling: two T4s and at most 12 hours (four CPU cores without a GPU). Kaggle runs several batch
sessions at once, so N sessions train different members of one recipe, each its own kernel
(`<slug>-s1`, `-s2`, ...): session i shifts --seed by 1000 x members x i, so no (family, seed) is trained twice,
and every session holds out the same rows (--holdout-seed), so the blend is scored on them before a submission
is spent. A session that fails, overruns or writes files that fail the road's checks is left out of the blend
and named; a push refused for the cap on concurrent sessions is sent again when one of ours ends.

The plan and every session's version are kept in runs/<time>-sessions/plan.json as they happen: after Ctrl-C or
a crash here, the sessions go on running on Kaggle, and `push.py collect runs/<time>-sessions` fetches, blends
and submits whatever finished.
"""

import contextlib
import json
import math
import pathlib
import signal
import sys

from digit_recognizer import budget, config as configuration, submit
from kaggle_road import blend
from kaggle_road.client import COMPETITION, KaggleError, refusing
from kaggle_road.checks import check_run
from kaggle_road.steps import FINISHED, poll

WEEKLY_GPU_HOURS = 30  # Kaggle's GPU quota a week, about: the estimate where the client does not say
AT_ONCE = {"gpu": 2, "cpu": 5}  # batch sessions Kaggle runs at once, an estimate (more are refused, "Maximum batch")
QUEUE_MINUTES = 60  # a session's wait for a machine, allowed for on top of what it runs


def session_hours(args: list) -> float:
    """The budget a session of kernel.py flags `args` runs with: its own, else the one a Kaggle session takes
    from its limit."""
    kaggle = {"KAGGLE_KERNEL_RUN_TYPE": "Batch"}
    return budget.session_budget(configuration.parse_flags(args), lambda line: None, kaggle).budget_minutes / 60


def wait_limit(args: list, count: int, gpu: bool) -> float:
    """Seconds to wait for `count` sessions of `args` (--timeout's default): the session's budget, the margin its
    kernel keeps and a queue, once for each wave of sessions that the cap on sessions at once forces."""
    waves = math.ceil(count / AT_ONCE["gpu" if gpu else "cpu"])
    return waves * (session_hours(args) * 60 + budget.SESSION_MARGIN_MINUTES + QUEUE_MINUTES) * 60


def session_args(args: list, count: int) -> list:
    """kernel.py flags for each of `count` sessions: the same recipe, each with members of its own seeds."""
    config = configuration.parse_flags(args)
    shift = configuration.SEED_STRIDE * config.members  # past the last member of the session before
    return [args + ["--seed", str(config.seed + shift * number)] for number in range(count)]


def plan_line(args: list, count: int, gpu: bool, left, quota=None) -> str:
    """What --sessions N would spend: sessions, members, time, GPU hours against the weekly quota (`quota`, the
    hours left as Kaggle says, else the usual weekly figure), submissions; a warning where it is over."""
    config, hours = configuration.parse_flags(args), session_hours(args)
    weekly = f"the {quota:.1f} left this week" if quota is not None else f"the weekly {WEEKLY_GPU_HOURS} (an estimate)"
    spend = f"up to {count * hours:.1f} GPU hours of {weekly}" if gpu else "no GPU hours (CPU sessions)"
    over = gpu and count * hours > (WEEKLY_GPU_HOURS if quota is None else quota)
    return (f"plan: {count} sessions of {config.members} members each ({config.model}, {config.epochs} epochs), "
            f"{count * config.members} in the blend at most; each stops adding members after "
            f"{hours * 60:.0f} minutes; {spend}; submissions left today: "
            f"{'not known' if left is None else left}; one submission: the blend; waits up to "
            f"{wait_limit(args, count, gpu) / 3600:.1f} hours"
            + ("\nwarning: if the sessions run to their budget, that is more GPU time than the week holds; the "
               "quota stops them where it ends (fewer --sessions, or --set budget_minutes=M)" if over else ""))


@contextlib.contextmanager
def interrupt_afterwards():
    """Ctrl-C inside the block is raised when the block is done."""
    caught = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def state(session: dict) -> str:
    """A session as the status line shows it."""
    return session.get("status") or ("push failed" if session["outcome"] else "not pushed yet")


class Sessions:
    """N kernels pushed, waited on together, fetched, checked, blended and submitted once."""

    def __init__(self, road, folder: pathlib.Path):
        self.road, self.folder = road, folder
        self.plan_path = folder / "plan.json"

    def save(self, plan: dict):
        submit.write_json(self.plan_path, plan)

    def run(self, args: list, count: int, message: str):
        plan = {"message": message, "sessions": [
            {"name": f"s{number + 1}", "slug": f"{self.road.slug}-s{number + 1}", "args": own, "version": None,
             "outcome": None} for number, own in enumerate(session_args(args, count))]}
        self.folder.mkdir(parents=True, exist_ok=True)
        self.save(plan)
        try:
            self.push_and_wait(plan)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(self.left_running(plan)) from None
        except Exception:  # a fault here, not on Kaggle: its traceback follows, and the sessions run on
            print(f"push.py failed: {self.left_running(plan)}", file=sys.stderr)
            raise
        return self.collect()

    def left_running(self, plan: dict) -> str:
        pushed = [s["name"] for s in plan["sessions"] if s["version"]]
        return (f"sessions {', '.join(pushed) or 'none'} keep running on Kaggle (not cancelled); `python "
                f"scripts/push.py collect {self.folder}` fetches, blends and submits what finished")

    def push_and_wait(self, plan: dict):
        """Pushes every session (again when the cap on concurrent sessions refused it and one of ours ended, or
        none of ours runs) and waits for all of them, a status line a poll."""
        waiting, capped = list(plan["sessions"]), False

        def all_ended(elapsed):
            nonlocal capped
            for session in [s for s in waiting if not s["version"]] if not capped else []:
                with interrupt_afterwards():  # a session pushed but not in plan.json could never be collected
                    capped = not self.push(session, waiting)
                    self.save(plan)
                if capped:
                    print(f"{session['name']}: {session.pop('refused')}; pushed again when one of ours ends")
                    break
            live = [s for s in waiting if s["version"]]
            for session in live:
                session["status"] = self.status(session)
                if session["status"] in FINISHED:
                    waiting.remove(session)
                    capped = False
            capped = capped and len(live) > 0  # the cap is held by sessions not ours: try again each poll
            print(f"[{elapsed:6.0f} s] " + ", ".join(f"{s['name']} {state(s)}" for s in plan["sessions"]), flush=True)
            return True if not waiting else None

        if poll(all_ended, self.road.options.poll, self.road.options.timeout) is None:
            print(f"still running after {self.road.options.timeout:.0f} s: "
                  f"{', '.join(s['name'] for s in waiting)}; left out of this blend")

    def push(self, session: dict, waiting: list) -> bool:
        """Pushes one session: False when the cap on concurrent sessions refused it (to be pushed again)."""
        try:
            stamp = self.road.for_kernel(session["slug"]).push(session["args"])
        except KaggleError as error:
            if "Maximum batch" in str(error):
                session["refused"] = str(error)
                return False
            session["outcome"] = str(error)
            waiting.remove(session)
            return True
        session.update(version=stamp["version"], kernel=stamp["kernel"], bundle_hash=stamp["bundle_hash"])
        try:
            self.road.refuse_invalid_sources(stamp)
        except KaggleError as error:
            session["outcome"] = str(error)
            waiting.remove(session)
        return True

    def status(self, session: dict) -> str:
        """The session's status; after a read that failed (not refused), the last one known."""
        read = self.road.status_while_waiting(f"{session['kernel']}/{session['version']}")
        return (session.get("status") or "not read") if read is None else read[0]

    def fetch(self, session: dict) -> pathlib.Path:
        """The session's checked test_probabilities.npz, or a KaggleError saying why it is left out."""
        if not session.get("version"):
            raise KaggleError(session.get("outcome") or "never pushed")
        status = self.status(session)
        if status != "COMPLETE":
            raise KaggleError(f"ended {status}" if status in FINISHED else f"still {status}; collect again later")
        path = self.road.output(f"{session['kernel']}/{session['version']}", self.folder / session["name"])
        check_run(path, session["bundle_hash"])
        return blend.find(str(path.parent))

    def read_plan(self) -> dict:
        """plan.json, checked: a one-line KaggleError if it is not one that `run` wrote."""
        try:
            plan = json.loads(self.plan_path.read_text())
        except (OSError, ValueError) as error:
            raise KaggleError(f"collect: {self.plan_path}: not readable as JSON ({error})") from None
        fields = ("name", "slug", "version", "outcome")
        if not (isinstance(plan, dict) and isinstance(plan.get("message"), str)
                and isinstance(plan.get("sessions"), list)
                and all(isinstance(s, dict) and all(f in s for f in fields) for s in plan["sessions"])):
            raise KaggleError(f"collect: {self.plan_path}: not a plan that `push.py run --sessions` wrote (a message "
                              f"and sessions with {', '.join(fields)})")
        return plan

    def collect(self):
        """Fetches every finished session, blends the good ones, submits the blend once: the ledger's row."""
        plan = self.read_plan()
        good = []
        for session in plan["sessions"]:
            try:
                good.append((session, self.fetch(session)))
                session["outcome"] = "in the blend"
            except KaggleError as error:
                session["outcome"] = f"left out: {error}"
                print(f"{session['name']}: {session['outcome']}")
        self.save(plan)
        row = {"time": self.folder.name.split("-")[0], "message": plan["message"], "holdout_accuracy": None,
               "public_score": None, "sessions": plan["sessions"], "outcome": None}
        with self.road.recording(row):
            if not good:
                raise KaggleError("no session is good: nothing to blend, no submission spent")
            with refusing("blend: "):
                probabilities, runs = blend.blend([path for _, path in good])
            members = sum(len(run["members"]) for run in runs)
            path = submit.write_submission(probabilities, self.folder / "submission.csv")
            row.update(members=members, holdout=blend.holdout_line([p for _, p in good]))
            print(f"blend of {', '.join(s['name'] for s, _ in good)}: {members} members; {row['holdout']}")
            row["submission_ref"] = ref = self.road.submit(path, f"{plan['message']}, {members} members",
                                                           len(probabilities))
            row["public_score"] = self.road.score(ref)
        return row


def summary_of(row: dict) -> str:
    """One line for the end of a --sessions run."""
    named = "; ".join(f"{s['name']}: {s['outcome']}" for s in row["sessions"])
    score = row["public_score"] or "not shown yet (`python scripts/push.py score` later)"
    return f"{COMPETITION}: public score {score} from {row.get('members')} members ({named})"
