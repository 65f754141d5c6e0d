"""From this repository to a leaderboard score, through the `kaggle` package's API.

  python scripts/push.py run [--fast | --preset gpu]   # bundle, push, wait, fetch output, check, submit,
                                                       # score, ledger
  python scripts/push.py push | status | output | submit FILE | score   # score: the ledger's unscored run first
  python scripts/push.py run --dry-run  # nothing pushed or submitted: prints what would be sent
  python scripts/push.py run --set holdout=0   # the final submission: members trained on all 42,000 rows
  python scripts/push.py run --sessions 3 [--preset cpu]   # three sessions at once, their blend submitted once
  python scripts/push.py collect runs/<time>-sessions      # after Ctrl-C: fetch, blend, submit what finished

Credentials: KAGGLE_USERNAME and KAGGLE_KEY, KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json. The kernel's owner is
taken from them (or --owner), so kernel-metadata.json is never edited by hand. Every run's files land in
runs/<time>-<bundle hash>/ and one line per run (or file submitted alone) goes to runs/ledger.jsonl, saying how
it ended; both are kept whatever fails later.

A Kaggler's scarce things are GPU hours and daily submissions, so `run` spends neither on the wrong thing: it
pushes only when a submission is left today, reads the exact version it pushed, and submits only a file that
proves to be that version's, made from Kaggle's data by a run that learned (scripts/kaggle_steps.py).
"""

import argparse
import datetime
import pathlib
import sys

from digit_recognizer import config as configuration
from kaggle_api import COMPETITION, KaggleError, owner_from_credentials, set_http_timeout
from kaggle_steps import CPU_PRESETS, KaggleSteps, check_run, read_summary
import ledger
import sessions

ROOT = pathlib.Path(__file__).resolve().parents[1]


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class Road(KaggleSteps):
    """The steps strung together (`run`, `submit FILE`), each kept in the ledger."""

    def __init__(self, options):
        super().__init__(options)
        self.runs = pathlib.Path(options.runs_dir)

    def kernel_args(self) -> list:
        """kernel.py's flags for the bundle, checked here: a typo found on Kaggle would cost a GPU session."""
        args = ["--preset", self.options.preset]
        try:
            args += configuration.settings_flags(self.options.set)
            configuration.parse_flags(args)
        except ValueError as error:
            raise KaggleError(f"push: {error}") from None
        return args

    def unscored(self):
        """The latest ledger line whose submission was sent but not scored (scoring failed or was cut short)."""
        path = self.runs / "ledger.jsonl"
        try:
            rows = ledger.read(path) if path.is_file() else []  # a run's last line: one scored later is done
        except ValueError as error:
            raise KaggleError(str(error)) from None
        return next((row for row in reversed(rows) if row.get("submission_ref") and row["public_score"] is None), None)

    def record(self, row: dict):
        ledger.append(self.runs / "ledger.jsonl", row)
        print(f"recorded in {self.runs / 'ledger.jsonl'}")

    def submit_file(self, path: pathlib.Path, message: str):
        """`submit FILE` (a blend, an earlier run's file): sent, scored and, once Kaggle has it, recorded in the
        ledger like a run, with the hold-out of the summary.json beside it, if any."""
        summary = read_summary(path.parent)
        row = {"time": utc_stamp(), "file": str(path), "message": message, "public_score": None,
               "holdout_accuracy": summary.get("ensemble_holdout_accuracy"), "config": summary.get("config")}
        try:
            row["submission_ref"] = self.submit(path, message)
            row["public_score"] = self.score(row["submission_ref"])
        finally:
            if row.get("submission_ref"):
                self.record(row)

    def before_spending(self):
        """What must hold before a GPU session is spent: a writable --runs-dir, a submission left today."""
        from digit_recognizer import submit
        try:
            submit.writable_folder(self.runs, "--runs-dir")
        except ValueError as error:
            raise KaggleError(str(error)) from None
        left = self.submissions_left()
        if left == 0:
            raise KaggleError(f"run: no submission left today on {COMPETITION}; nothing pushed, no GPU time spent: "
                              "run again tomorrow (Kaggle's day ends at 00:00 UTC)")
        print(f"{COMPETITION}: " + ("submissions left today not known (not on a team yet?)" if left is None
                                    else f"{left} submission(s) left today"))

    def dry_run(self, args: list):
        if self.options.sessions > 1:
            try:  # a read, where there are credentials: nothing is pushed or submitted
                owner_from_credentials()
                left = self.submissions_left()
            except KaggleError as error:
                left = f"not known ({str(error).split(':')[0]})"
            print(sessions.plan_line(args, self.options.sessions, self.options.preset not in CPU_PRESETS, left))
            return
        self.push(args)
        print(f"would check the submissions left today, wait, fetch and check the version pushed, submit to "
              f"{COMPETITION}, poll the score, append to the ledger")

    def run(self):
        args = self.kernel_args()
        if self.options.dry_run:
            return self.dry_run(args)
        self.kernel()  # credentials, before any work
        self.before_spending()
        when = utc_stamp()
        if self.options.sessions > 1:
            found = sessions.Sessions(self, self.runs / f"{when}-sessions")
            print(sessions.summary_of(found.run(args, self.options.sessions, f"{when} blend of "
                                                f"{self.options.sessions} sessions, preset {self.options.preset}")))
            return
        stamp = self.push(args)
        folder = self.runs / f"{when}-{stamp['bundle_hash']}"
        message = f"{when} v{stamp['version']} commit {stamp['commit']} bundle {stamp['bundle_hash']}"  # unique
        row = {"time": when, **stamp, "holdout_accuracy": None, "public_score": None, "config": None,
               "outcome": None}
        try:
            self.refuse_invalid_sources(stamp)
            version = f"{stamp['kernel']}/{stamp['version']}"
            self.wait(version)
            path = self.output(version, folder)
            summary = read_summary(path.parent)
            row.update(holdout_accuracy=summary.get("ensemble_holdout_accuracy"), config=summary.get("config"))
            check_run(path, stamp["bundle_hash"])
            row["submission_ref"] = ref = self.submit(path, message)  # kept even if scoring fails
            row["public_score"] = self.score(ref)
            row["outcome"] = "scored"
        except KaggleError as error:
            row["outcome"] = str(error)
            raise
        finally:
            self.record(row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["run", "push", "status", "output", "submit", "score", "collect"],
                        nargs="?", default="run")
    parser.add_argument("file", nargs="?", help="submit: the submission.csv to send; collect: a runs/<time>-sessions "
                                                "folder")
    configuration.add_preset_arguments(parser)  # the kernel's own --preset and --fast
    parser.add_argument("--sessions", type=int, default=1, help="run: sessions at once, each training other "
                        "members of the recipe; their blend is submitted once")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a kernel.py flag baked into the pushed bundle, e.g. --set holdout=0 to train the final "
                             "members on all 42,000 rows (no hold-out score then)")
    parser.add_argument("--owner", help="kernel owner (default: the credentials' user)")
    parser.add_argument("--version", type=int, help="status, output: this version of the kernel (default: the "
                        "newest that has finished)")
    parser.add_argument("--dry-run", action="store_true", help="no network call; print what would be sent")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds to wait for the kernel or score")
    parser.add_argument("--poll", type=float, default=30, help="seconds between status reads")
    parser.add_argument("--grace", type=float, default=120, help="seconds to look for the version or submission "
                        "that a push or submit without an answer may have made")
    parser.add_argument("--retries", type=int, default=4, help="tries for each API call that a retry can help")
    parser.add_argument("--backoff", type=float, default=2.0, help="first pause between tries, doubling")
    parser.add_argument("--http-timeout", type=float, default=60, help="seconds to wait for one HTTP answer")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="where outputs and the ledger go")
    parser.add_argument("--message", default="", help="submit: the submission's description")
    options = parser.parse_args(argv)
    options.preset = options.preset or "full"
    if options.sessions < 1:
        parser.error("--sessions: at least 1")
    set_http_timeout(options.http_timeout)
    road = Road(options)
    try:
        if options.step == "run":
            road.run()
        elif options.step == "push":
            road.refuse_invalid_sources(road.push(road.kernel_args()))
        elif options.step == "status":
            version = road.kernel() + (f"/{options.version}" if options.version else "")
            status, failure = road.status(version)
            print(f"{version}: {status} {failure}".rstrip())
        elif options.step == "output":
            version = road.kernel() + (f"/{options.version}" if options.version else "")
            road.output(version, road.runs / f"{utc_stamp()}-output")
        elif options.step == "submit":
            if not options.file:
                raise KaggleError("submit: name the file, e.g. `python scripts/push.py submit runs/.../submission.csv`")
            road.submit_file(pathlib.Path(options.file),
                             options.message or f"{utc_stamp()} submitted by scripts/push.py")
        elif options.step == "collect":
            if not options.file or not (pathlib.Path(options.file) / "plan.json").is_file():
                raise KaggleError("collect: name a runs/<time>-sessions folder (it holds plan.json)")
            print(sessions.summary_of(sessions.Sessions(road, pathlib.Path(options.file)).collect()))
        elif options.step == "score":
            row = road.unscored()
            if row is None:
                road.score()
            else:  # the ledger's run whose score never came: scored now, recorded again with it
                road.record(dict(row, public_score=road.score(row["submission_ref"]), outcome="scored"))
    except KaggleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
