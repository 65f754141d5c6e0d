"""From this repository to a leaderboard score, through the `kaggle` package's API.

  python scripts/push.py run [--fast | --preset gpu]   # bundle, push, wait, fetch output, validate, submit,
                                                       # score, ledger
  python scripts/push.py push | status | output | submit FILE | score   # score: the ledger's unscored run first
  python scripts/push.py run --dry-run  # no network: prints what would be sent
  python scripts/push.py run --set holdout=0   # the final submission: members trained on all 42,000 rows

Credentials: KAGGLE_USERNAME and KAGGLE_KEY, KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json. The kernel's owner is
taken from them (or --owner), so kernel-metadata.json is never edited by hand. Every run's files land in
runs/<time>-<bundle hash>/ and one line per run (or file submitted alone) goes to runs/ledger.jsonl; both are
kept whatever fails later.

Traps of kaggle 2.2.x handled here: a push whose response carries `error` (the CLI prints it and exits 0); status
read right after a push can be the previous version's (a finished status counts only once this version was seen
queued or running, or after --stale-grace seconds); `kernels output` does not check the download's HTTP status
(submission.csv is validated before use); a failed upload returns "Could not submit" instead of raising.
"""

import argparse
import datetime
import json
import pathlib
import shutil
import sys
import tempfile
import time

from digit_recognizer.config import PRESETS
from kaggle_api import COMPETITION, KaggleError, NoAnswer, call, connect, owner_from_credentials, set_http_timeout
import ledger

ROOT = pathlib.Path(__file__).resolve().parents[1]

FINISHED = {"COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}


def utc_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def read_summary(folder: pathlib.Path) -> dict:
    """The kernel's summary.json, or {} when it is missing or not one (a failed download leaves an error body)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) and "config" in summary else {}


class KaggleSteps:
    """The road's steps on one kernel (push, status, output, submit, score), each a method; `run` takes them all."""

    def __init__(self, options):
        self.options = options
        self.runs = pathlib.Path(options.runs_dir)
        self.api = None
        metadata = json.loads((ROOT / "kernel-metadata.json").read_text())
        self.slug = metadata["id"].split("/", 1)[1]
        self.metadata = metadata

    def client(self):
        if self.api is None:
            self.api = connect()
        return self.api

    def kernel(self) -> str:
        if self.options.dry_run:
            return f"{self.options.owner or 'OWNER'}/{self.slug}"
        owner = self.options.owner or owner_from_credentials()
        if not owner:
            raise KaggleError("KAGGLE_API_TOKEN does not say whose kernel this is: pass --owner YOUR_KAGGLE_USERNAME")
        return f"{owner}/{self.slug}"

    def api_call(self, what, name, *args, repeatable=True, **kwargs):
        return call(what, getattr(self.client(), name), *args, retries=self.options.retries,
                    backoff=self.options.backoff, repeatable=repeatable, **kwargs)

    def push(self) -> dict:
        import bundle
        from digit_recognizer import config as configuration
        args = ["--preset", self.options.preset]
        try:  # checked here: a typo found on Kaggle would cost a GPU session
            args += configuration.settings_flags(self.options.set)
            configuration.parse_flags(args)
        except ValueError as error:
            raise KaggleError(f"push: {error}") from None
        kernel = self.kernel()  # credentials checked before any work
        path, digest = bundle.build(args)
        metadata = dict(self.metadata, id=kernel, code_file="kernel.py")
        stamp = {"commit": bundle.source_commit(), "bundle_hash": digest, "kernel_args": args, "kernel": kernel}
        if self.options.dry_run:
            print(json.dumps({"would_push": metadata, "bundle": str(path), "bundle_bytes": path.stat().st_size,
                              **stamp}, indent=1))
            return stamp
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(path, pathlib.Path(folder) / "kernel.py")
            (pathlib.Path(folder) / "kernel-metadata.json").write_text(json.dumps(metadata))
            try:
                response = self.api_call("push", "kernels_push", folder, repeatable=False)
            except NoAnswer as error:
                return self.started_without_answer(stamp, error)
        if getattr(response, "error", ""):
            raise KaggleError(f"push: Kaggle refused the kernel: {response.error}")
        stamp["version"] = response.version_number
        print(f"pushed {kernel} version {response.version_number} (bundle {digest}): {response.url}")
        return stamp

    def within_grace(self, look):
        """look() every --poll seconds until it returns something, for --stale-grace seconds; None if it never did."""
        started = time.monotonic()
        while time.monotonic() - started < self.options.stale_grace:
            found = look()
            if found is not None:
                return found
            time.sleep(self.options.poll)
        return None

    def started_without_answer(self, stamp: dict, error: NoAnswer) -> dict:
        """A push that got no answer may still have started a run: look for one rather than push again, which
        would start a second GPU session."""
        kernel = stamp["kernel"]

        def running():
            try:
                status = self.api_call("status", "kernels_status", kernel).status
            except KaggleError:  # no kernel yet (404), or no answer either
                return None
            return status.name if getattr(status, "name", None) in ("QUEUED", "RUNNING") else None

        status = self.within_grace(running)
        if status is None:
            raise KaggleError(f"{error}, and no run of {kernel} started within {self.options.stale_grace:.0f} "
                              f"s; not sent again (a second push would start a second GPU session): look at "
                              f"https://www.kaggle.com/code/{kernel}, then push again if nothing runs")
        print(f"{error}, but {kernel} is now {status}: taking that run as this push (not sent again)")
        return dict(stamp, version=None)

    def wait(self) -> str:
        started, seen_running, kernel = time.monotonic(), False, self.kernel()
        while True:
            elapsed = time.monotonic() - started
            response = self.api_call("status", "kernels_status", kernel)
            status = getattr(response.status, "name", str(response.status))
            print(f"[{elapsed:6.0f} s] {kernel}: {status}", flush=True)
            seen_running |= status in ("QUEUED", "RUNNING")
            if status in FINISHED and (seen_running or elapsed >= self.options.stale_grace):
                if status != "COMPLETE":
                    raise KaggleError(f"kernel ended {status}: {response.failure_message or 'see its log'}; "
                                      f"fetch it with `python scripts/push.py output`")
                return status
            if elapsed > self.options.timeout:
                raise KaggleError(f"kernel still {status} after {self.options.timeout:.0f} s; it keeps running on "
                                  "Kaggle: `python scripts/push.py status` later")
            time.sleep(self.options.poll)

    def output(self, folder: pathlib.Path) -> pathlib.Path:
        folder.mkdir(parents=True, exist_ok=True)
        files, _ = self.api_call("output", "kernels_output", self.kernel(), str(folder), force=True)
        print(f"fetched {len(files)} files to {folder}")
        found = sorted(folder.rglob("submission.csv"))
        if not found:
            raise KaggleError(f"output: no submission.csv among the kernel's files in {folder}")
        self.check_submission(found[0])
        return found[0]

    @staticmethod
    def check_submission(path: pathlib.Path):
        import pandas as pd
        from digit_recognizer import submit
        rows = read_summary(path.parent).get("test_rows", 28000)
        try:
            submit.validate_submission(pd.read_csv(path), rows, name=str(path))
        except (ValueError, pd.errors.ParserError) as error:  # a failed download leaves an error page here
            raise KaggleError(f"output: {error}") from None

    def submit(self, path: pathlib.Path, message: str) -> int:
        self.check_submission(path)
        try:
            response = self.api_call("submit", "competition_submit", str(path), message, COMPETITION, quiet=True,
                                     repeatable=False)
        except NoAnswer as error:  # a submission spends one of the day's: find it rather than send it again
            return self.submitted_without_answer(message, error)
        if response.message == self.client().COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE or not response.ref:
            raise KaggleError(f"submit: Kaggle did not take the file: {response.message}; {path} is kept")
        print(f"submitted {path} as {response.ref}: {response.message}")
        return response.ref

    def submitted_without_answer(self, message: str, error: NoAnswer):
        """The submission's ref, once Kaggle lists one with this message; an error if none shows up in time."""
        def listed():
            submissions = self.api_call("submit", "competition_submissions", COMPETITION)
            return next((s for s in submissions if s.description == message), None)

        sent = self.within_grace(listed)
        if sent is None:
            raise KaggleError(f"{error}, and no submission '{message}' was listed within "
                              f"{self.options.stale_grace:.0f} s; not sent again: look at "
                              f"https://www.kaggle.com/competitions/{COMPETITION}/submissions")
        print(f"{error}, but Kaggle lists it as {sent.ref}: not sent again")
        return sent.ref

    def score(self, ref=None):
        started = time.monotonic()
        while True:
            submissions = self.api_call("score", "competition_submissions", COMPETITION)
            mine = next((s for s in submissions if ref is None or s.ref == ref), None)
            if mine is None:
                raise KaggleError(f"score: no submission {ref or ''} on {COMPETITION}")
            status = getattr(mine.status, "name", str(mine.status))
            if status == "COMPLETE":
                print(f"public score {mine.public_score or '(none)'}: {mine.description}")
                return mine.public_score or None
            if status == "ERROR":
                raise KaggleError(f"score: Kaggle could not score submission {mine.ref}: {mine.error_description}")
            if time.monotonic() - started > self.options.timeout:
                raise KaggleError(f"score: submission {mine.ref} still {status}; `python scripts/push.py score` later")
            time.sleep(min(self.options.poll, 10))

    def unscored(self):
        """The latest ledger line whose submission was sent but not scored (scoring failed or was cut short)."""
        path = self.runs / "ledger.jsonl"
        try:
            rows = ledger.read(path) if path.is_file() else []  # a run's last line: one scored later is done
        except ValueError as error:
            raise KaggleError(str(error)) from None
        return next((row for row in reversed(rows) if row.get("submission_ref") and row["public_score"] is None), None)

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

    def record(self, row: dict):
        ledger.append(self.runs / "ledger.jsonl", row)
        print(f"recorded in {self.runs / 'ledger.jsonl'}")

    def run(self):
        from digit_recognizer import submit
        if not self.options.dry_run:  # checked before the push: a bad --runs-dir must not cost a Kaggle run
            try:
                submit.writable_folder(self.runs, "--runs-dir")
            except ValueError as error:
                raise KaggleError(str(error)) from None
        stamp = self.push()
        message = f"commit {stamp['commit']} bundle {stamp['bundle_hash']}"
        if self.options.dry_run:
            print(f"would wait, fetch, validate, submit to {COMPETITION} with message '{message}', poll the score, "
                  "append to the ledger")
            return
        when = utc_stamp()
        folder = self.runs / f"{when}-{stamp['bundle_hash']}"
        row = {"time": when, **stamp, "holdout_accuracy": None, "public_score": None, "config": None}
        try:
            self.wait()
            path = self.output(folder)
            summary = read_summary(path.parent)
            row.update(holdout_accuracy=summary.get("ensemble_holdout_accuracy"), config=summary.get("config"))
            row["submission_ref"] = ref = self.submit(path, message)  # kept even if scoring fails
            row["public_score"] = self.score(ref)
        finally:
            self.record(row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["run", "push", "status", "output", "submit", "score"], nargs="?",
                        default="run")
    parser.add_argument("file", nargs="?", help="submit: the submission.csv to send")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full",
                        help="the recipe the kernel runs: full (default), fast (the smoke run) or gpu (about two "
                             "hours of Kaggle's two T4s)")
    parser.add_argument("--fast", action="store_const", const="fast", dest="preset", help="same as --preset fast")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a kernel.py flag baked into the pushed bundle, e.g. --set holdout=0 to train the final "
                             "members on all 42,000 rows (no hold-out score then)")
    parser.add_argument("--owner", help="kernel owner (default: the credentials' user)")
    parser.add_argument("--dry-run", action="store_true", help="no network call; print what would be sent")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds to wait for the kernel or score")
    parser.add_argument("--poll", type=float, default=30, help="seconds between status reads")
    parser.add_argument("--stale-grace", type=float, default=120, help="seconds before a finished status is trusted "
                        "without having seen this version queued or running")
    parser.add_argument("--retries", type=int, default=4, help="tries for each API call that a retry can help")
    parser.add_argument("--backoff", type=float, default=2.0, help="first pause between tries, doubling")
    parser.add_argument("--http-timeout", type=float, default=60, help="seconds to wait for one HTTP answer")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="where outputs and the ledger go")
    parser.add_argument("--message", default="", help="submit: the submission's description")
    options = parser.parse_args(argv)
    set_http_timeout(options.http_timeout)
    road = KaggleSteps(options)
    try:
        if options.step == "run":
            road.run()
        elif options.step == "push":
            road.push()
        elif options.step == "status":
            response = road.api_call("status", "kernels_status", road.kernel())
            status = getattr(response.status, "name", response.status)
            print(f"{road.kernel()}: {status} {response.failure_message or ''}")
        elif options.step == "output":
            road.output(road.runs / f"{utc_stamp()}-output")
        elif options.step == "submit":
            if not options.file:
                raise KaggleError("submit: name the file, e.g. `python scripts/push.py submit runs/.../submission.csv`")
            road.submit_file(pathlib.Path(options.file), options.message or "submitted by scripts/push.py")
        elif options.step == "score":
            row = road.unscored()
            if row is None:
                road.score()
            else:  # the ledger's run whose score never came: scored now, recorded again with it
                road.record(dict(row, public_score=road.score(row["submission_ref"])))
    except KaggleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
