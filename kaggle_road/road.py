"""The steps strung together: `run` (bundle, push, wait, fetch, check, submit, score) and `submit FILE`, each
kept as a line of the run ledger that says how it ended, whatever fails later.

A Kaggler's scarce things are GPU hours and daily submissions, so `run` spends neither on the wrong thing: it
pushes only when a submission is left today, reads the exact version it pushed, and submits only a file that
proves to be that version's, made from Kaggle's data by a run that learned (checks.check_run).
"""

import contextlib
import datetime
import pathlib

from digit_recognizer import config as configuration, submit
from kaggle_road import ledger, sessions
from kaggle_road.client import COMPETITION, KaggleError, refusing
from kaggle_road.checks import TEST_ROWS, check_run, check_title, read_summary
from kaggle_road.steps import CPU_PRESETS, KaggleSteps


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class Road(KaggleSteps):
    """The default kernel's steps, strung together, with the ledger in --runs-dir."""

    def __init__(self, options):
        super().__init__(options)
        if options.preset in CPU_PRESETS:  # kernels of their own: no GPU setting carries over from a GPU run's
            self.slug = f"{self.slug}-cpu"
        self.runs = pathlib.Path(options.runs_dir)

    def kernel_args(self) -> list:
        """kernel.py's flags for the bundle, checked here, with the kernels' titles and the time to wait for them:
        a typo found on Kaggle would cost a GPU session. --timeout's default follows the work (wait_limit)."""
        args = ["--preset", self.options.preset]
        with refusing("push: "):
            args += configuration.settings_flags(self.options.set)
            configuration.parse_flags(args)
        count = self.options.sessions
        for slug in [self.slug] if count == 1 else [f"{self.slug}-s{n}" for n in range(1, count + 1)]:
            check_title(slug)
        if self.options.timeout is None:
            self.options.timeout = sessions.wait_limit(args, count, self.options.preset not in CPU_PRESETS)
        return args

    # ---- the ledger ----
    def unscored(self):
        """The latest ledger line whose submission was sent but not scored (scoring failed or was cut short)."""
        path = self.runs / "ledger.jsonl"
        with refusing():
            rows = ledger.read(path) if path.is_file() else []  # a run's last line: one scored later is done
        return next((row for row in reversed(rows) if row.get("submission_ref") and row["public_score"] is None), None)

    def record(self, row: dict):
        ledger.append(self.runs / "ledger.jsonl", row)
        print(f"recorded in {self.runs / 'ledger.jsonl'}")

    @contextlib.contextmanager
    def recording(self, row: dict, kept=lambda row: True):
        """Runs the block with `row`, then records it in the ledger (where kept(row)) however the block ended: its
        `outcome` is "scored", the error that stopped it, or "interrupted"."""
        try:
            yield row
            row["outcome"] = "scored" if row.get("public_score") else "submitted; no public score yet"
        except KaggleError as error:
            row["outcome"] = str(error)
            raise
        except KeyboardInterrupt as stop:
            row["outcome"] = f"interrupted: {stop}" if str(stop) else "interrupted"
            raise
        finally:
            if kept(row):
                self.record(row)

    # ---- the steps strung together ----
    @staticmethod
    @contextlib.contextmanager
    def left_running(version: str):
        """Ctrl-C in the block says what keeps running on Kaggle and how to pick it up."""
        try:
            yield
        except KeyboardInterrupt:
            number = version.rsplit("/", 1)[-1]
            raise KeyboardInterrupt(f"{version} keeps running on Kaggle (not cancelled): `python scripts/push.py "
                                    f"status --version {number}`, then `output --version {number}` and `submit "
                                    "FILE` send its file") from None

    def submit_file(self, path: pathlib.Path, message: str):
        """`submit FILE` (a blend, an earlier run's file): checked against the competition itself, whatever
        stands beside it, then sent, scored and, once Kaggle has it, recorded in the ledger like a run, with the
        hold-out of the summary.json beside it, if any."""
        summary = read_summary(path.parent)
        row = {"time": utc_stamp(), "file": str(path), "message": message, "public_score": None,
               "holdout_accuracy": summary.get("ensemble_holdout_accuracy"), "config": summary.get("config")}
        with self.recording(row, kept=lambda row: row.get("submission_ref")):
            row["submission_ref"] = self.submit(path, message, TEST_ROWS)
            row["public_score"] = self.score(row["submission_ref"])

    def score_unscored(self):
        """`score`: the ledger's run whose score never came, scored now and recorded again; else the newest."""
        row = self.unscored()
        if row is None:
            self.score()
        else:
            self.record(dict(row, public_score=self.score(row["submission_ref"]), outcome="scored"))

    def before_spending(self):
        """What must hold before a GPU session is spent: a writable --runs-dir, a submission left today."""
        with refusing():
            submit.writable_folder(self.runs, "--runs-dir")
        left = self.submissions_left()
        if left == 0:
            raise KaggleError(f"run: no submission left today on {COMPETITION}; nothing pushed, no GPU time spent: "
                              "run again tomorrow (Kaggle's day ends at 00:00 UTC)")
        print(f"{COMPETITION}: " + ("submissions left today not known (not on a team yet?)" if left is None
                                    else f"{left} submission(s) left today"))

    def gpu_hours_left(self):
        """The GPU hours left this week, as Kaggle says (quota_view), or None where it does not."""
        try:
            quota = self.api_call("quota", "quota_view").gpu_quota
            return (quota.total_time_allowed - quota.time_used).total_seconds() / 3600
        except (KaggleError, AttributeError, TypeError):
            return None

    def plan(self, args: list, reads=True) -> str:
        """The --sessions plan, with the submissions and GPU hours left as Kaggle says where it can be asked."""
        left, quota = "not known", None
        try:  # reads only, where there are credentials: nothing is pushed or submitted
            if reads:
                left, quota = self.submissions_left(), self.gpu_hours_left()
        except KaggleError as error:
            left = f"not known ({str(error).split(':')[0]})"
        return sessions.plan_line(args, self.options.sessions, self.options.preset not in CPU_PRESETS, left, quota)

    def dry_run(self, args: list):
        if self.options.sessions > 1:
            print(self.plan(args))
            return
        self.push(args)
        print(f"would check the submissions left today, wait up to {self.options.timeout / 3600:.1f} hours for the "
              f"version pushed, fetch and check it, submit to {COMPETITION}, poll the score, append to the ledger")

    def run(self):
        args = self.kernel_args()
        if self.options.dry_run:
            return self.dry_run(args)
        self.kernel()  # credentials, before any work
        self.before_spending()
        when = utc_stamp()
        if self.options.sessions > 1:
            print(self.plan(args, reads=False))
            found = sessions.Sessions(self, self.runs / f"{when}-sessions")
            print(sessions.summary_of(found.run(args, self.options.sessions, f"{when} blend of "
                                                f"{self.options.sessions} sessions, preset {self.options.preset}")))
            return
        stamp = self.push(args)
        folder = self.runs / f"{when}-{stamp['bundle_hash']}"
        message = f"{when} v{stamp['version']} commit {stamp['commit']} bundle {stamp['bundle_hash']}"  # unique
        row = {"time": when, **stamp, "holdout_accuracy": None, "public_score": None, "config": None,
               "outcome": None}
        version = f"{stamp['kernel']}/{stamp['version']}"
        with self.recording(row), self.left_running(version):
            self.refuse_invalid_sources(stamp)
            self.wait(version)
            path = self.output(version, folder)
            summary = read_summary(path.parent)
            row.update(holdout_accuracy=summary.get("ensemble_holdout_accuracy"), config=summary.get("config"))
            check_run(path, stamp["bundle_hash"])
            rows = summary.get("test_rows") or TEST_ROWS  # check_run checked the file against it
            row["submission_ref"] = ref = self.submit(path, message, rows)  # kept even if scoring fails
            row["public_score"] = self.score(ref)
