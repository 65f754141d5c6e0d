"""The road's steps on Kaggle for one kernel, each a method: push a version of it, wait for it, fetch its files,
check them, submit, score. road.py strings them together; the ledger lives there, the command line in
scripts/push.py.

Kaggle's ways these steps are built on (kaggle 2.2.5 client and its issue tracker):
- Status and output are read for the exact version pushed, `owner/slug/N`: read without a version, Kaggle answers
  for the kernel's latest run, say kaggle-cli's docs, and users have seen it answer for an older, finished one
  (kaggle-cli #1200).
- While a run is waited for, a read that fails (5xx, 429, a timeout, a 404 just after the push) is said and read
  again at the next poll, until --timeout; only a refusal (401, 403) ends the wait.
- A push's answer may lack its version number (the client then reads 0): the version is looked for, as after a
  push that got no answer. A title over 50 characters is answered 500 (kaggle-cli PR #179): refused here first.
- Output files come as links that expire: one answered 403 or 404 is listed again for a fresh one.
- A push or a submission answered 5xx, or not at all, may have taken effect: it is looked for, never sent again.
- A push can succeed and list the competition as an invalid source (rules not accepted): its kernel gets no data.
- `kernels output` does not check the download's HTTP status: the files are checked before use.
- A failed upload returns "Could not submit" instead of raising; a submission's score may be empty, or the
  submission not found, for a moment after it is made.
"""

import json
import pathlib
import shutil
import tempfile
import time

from kaggle_road import bundle
from kaggle_road.checks import check_submission, check_title
from kaggle_road.client import COMPETITION, RULES, KaggleError, LinkExpired, NoAnswer, NotFound, Refused, call, connect

ROOT = pathlib.Path(__file__).resolve().parents[1]
METADATA = ROOT / "kernel-metadata.json"
CPU_PRESETS = ("cpu",)  # run in a CPU session, on kernels of their own: no GPU asked, none of the weekly quota spent
FINISHED = {"COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"}
UPLOAD_FAILED = "Could not submit to competition"  # the client's COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE


def poll(look, every: float, limit: float):
    """The road's one waiting loop: look(seconds elapsed) every `every` seconds until it returns something other
    than None, and that; None once `limit` seconds have passed without."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        found = look(elapsed)
        if found is not None or elapsed > limit:
            return found
        time.sleep(every)


def unless_refused(read, say):
    """read()'s answer; None where it failed in a way a later read may not (5xx, 429, no answer, a 404 just after
    a push), once say(error) has told the user. A refusal (401, 403) raises: reading again would not help."""
    try:
        return read()
    except Refused:
        raise
    except KaggleError as error:
        say(error)
        return None


class KaggleSteps:
    """One kernel (`slug`, else kernel-metadata.json's) and the competition, through the kaggle client, with the
    options of scripts/push.py. Each kernel has its own; `for_kernel` makes another that shares the client."""

    def __init__(self, options, slug=None, connection=None):
        self.options = options
        self.metadata = json.loads(METADATA.read_text())
        self.slug = slug or self.metadata["id"].split("/", 1)[1]
        self.connection = connection if connection is not None else {}  # the client, once made: shared by kernels

    def for_kernel(self, slug: str) -> "KaggleSteps":
        return KaggleSteps(self.options, slug, self.connection)

    def client(self):
        if "api" not in self.connection:
            self.connection["api"], self.connection["user"] = connect(self.options.retries, self.options.backoff)
        return self.connection["api"]

    def user(self) -> str:
        """The Kaggle user the credentials name (the client asks Kaggle whose a token is)."""
        self.client()
        return self.connection["user"]

    def kernel(self) -> str:
        check_title(self.slug)
        if self.options.dry_run:
            return f"{self.options.owner or 'OWNER'}/{self.slug}"
        return f"{self.options.owner or self.user()}/{self.slug}"

    def api_call(self, what, name, *args, repeatable=True, **kwargs):
        return call(what, getattr(self.client(), name), *args, retries=self.options.retries,
                    backoff=self.options.backoff, repeatable=repeatable, **kwargs)

    def status(self, version: str) -> tuple:
        """(status name, failure message) of `version`: owner/slug/N, or owner/slug for whatever Kaggle answers."""
        response = self.api_call("status", "kernels_status", version)
        return getattr(response.status, "name", str(response.status)), response.failure_message or ""

    def within_grace(self, look):
        """look() every --poll seconds until it returns something, for --grace seconds; None if it never did."""
        return poll(lambda elapsed: look(), self.options.poll, self.options.grace)

    # ---- the kernel ----
    def last_version(self, kernel: str) -> int:
        """The newest version of `kernel` that Kaggle lists (0: none yet). `mine`: only a user's own listing holds
        private kernels, as ours are (kaggle-cli #538)."""
        listed = self.api_call("versions", "kernels_list", mine=True, search=kernel.split("/")[1], page_size=100)
        return max((k.current_version_number for k in listed or [] if k.ref == kernel), default=0)

    def push(self, args: list) -> dict:
        """Pushes the bundle baked with kernel.py flags `args`: the stamp of the version it started (kernel,
        version, commit, bundle hash, args, invalid sources)."""
        kernel = self.kernel()  # credentials checked before any work
        path, digest = bundle.build(args)
        metadata = dict(self.metadata, id=kernel, title=self.slug, code_file="kernel.py")  # the title makes the slug
        if self.options.preset in CPU_PRESETS:
            metadata["enable_gpu"] = False
            metadata.pop("machine_shape", None)
        stamp = {"commit": bundle.source_commit(), "bundle_hash": digest, "kernel_args": args, "kernel": kernel}
        if self.options.dry_run:
            print(json.dumps({"would_push": metadata, "bundle": str(path), "bundle_bytes": path.stat().st_size,
                              **stamp}, indent=1))
            return stamp
        before = self.last_version(kernel)
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(path, pathlib.Path(folder) / "kernel.py")
            (pathlib.Path(folder) / "kernel-metadata.json").write_text(json.dumps(metadata))
            try:
                response = self.api_call("push", "kernels_push", folder, repeatable=False)
            except NoAnswer as error:
                return dict(stamp, version=self.started_without_answer(kernel, before + 1, error))
        if getattr(response, "error", ""):
            raise KaggleError(f"push: Kaggle refused the kernel: {response.error}")
        version = response.version_number
        if version:
            print(f"pushed {kernel} version {version} (bundle {digest}): {response.url}")
        else:  # the client reads a missing number as 0 ("shouldn't happen"): looked for, as after no answer
            version = self.started_without_answer(kernel, before + 1, NoAnswer("push: answered without a version"))
        return dict(stamp, version=version, invalid_sources=list(response.invalid_competition_sources or []))

    def started_without_answer(self, kernel: str, version: int, error: NoAnswer) -> int:
        """A push that got no answer may still have started version `version` (the one after the newest before
        it): look for it, queued or running, rather than push again, which would start a second GPU session."""
        def started():
            try:
                status, _ = self.status(f"{kernel}/{version}")
            except KaggleError:  # not there (404), or no answer either
                return None
            return status if status in ("QUEUED", "RUNNING") else None

        if self.within_grace(started) is None:
            raise KaggleError(f"{error}, and no version {version} of {kernel} appeared within "
                              f"{self.options.grace:.0f} s; not sent again (a second push would start a second GPU "
                              f"session): look at https://www.kaggle.com/code/{kernel}, then push again if nothing "
                              "runs")
        print(f"{error}, but version {version} of {kernel} now exists: taking it as this push (not sent again)")
        return version

    @staticmethod
    def refuse_invalid_sources(stamp: dict):
        if stamp.get("invalid_sources"):
            raise KaggleError(f"push: version {stamp['version']} started without the competition's data (Kaggle "
                              f"listed {', '.join(stamp['invalid_sources'])} as an invalid source): accept the "
                              f"rules at {RULES}, then push again; the kernel stops at once without data, and no "
                              "submission is spent")

    def status_while_waiting(self, version: str):
        """(status, failure) of `version`, or None after a failed read, said in one line: a wait reads again at
        its next poll, so Kaggle away for an hour is Kaggle slow."""
        return unless_refused(lambda: self.status(version),
                              lambda error: print(f"{version}: not read ({error}); reading again at the next poll",
                                                  flush=True))

    def wait(self, version: str) -> str:
        last = "not read"

        def finished(elapsed):
            nonlocal last
            read = self.status_while_waiting(version)
            if read is None:
                return None
            last = read[0]
            print(f"[{elapsed:6.0f} s] {version}: {last}", flush=True)
            return read if last in FINISHED else None

        ended = poll(finished, self.options.poll, self.options.timeout)
        if ended is None:
            raise KaggleError(f"{version} still {last} after {self.options.timeout:.0f} s; it keeps running "
                              "on Kaggle: `python scripts/push.py status` later")
        status, failure = ended
        if status != "COMPLETE":
            number = version.rsplit("/", 1)[-1]
            raise KaggleError(f"kernel ended {status}: {failure or 'see its log'}; "
                              f"fetch its files with `python scripts/push.py output --version {number}`")
        return status

    def output(self, version: str, folder: pathlib.Path) -> pathlib.Path:
        """Downloads the files of `version` (owner/slug/N) to `folder`: the submission.csv among them."""
        folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.options.retries + 1):
            try:
                files, _ = self.api_call("output", "kernels_output", version, str(folder), force=True)
                break
            except LinkExpired as error:  # each listing hands out fresh links
                if attempt == self.options.retries:
                    raise
                print(f"{error}; listing the files again")
        print(f"fetched {len(files)} files of {version} to {folder}")
        found = sorted(folder.rglob("submission.csv"))
        if not found:
            raise KaggleError(f"output: no submission.csv among the kernel's files in {folder}")
        return found[0]

    # ---- the competition ----
    def submissions_left(self):
        """Submissions left today, or None where Kaggle does not say: all zeros (not on a team yet), or a read
        that failed (the client's own submit goes on then too)."""
        self.client()  # no credentials is no read failure
        limits = unless_refused(
            lambda: self.api_call("limits", "competition_get_submission_limits", COMPETITION),
            lambda error: print(f"the day's submission limits could not be read ({error}): going on"))
        if limits is None or not (limits.num_allowed_now or limits.num_today or limits.num_total):
            return None
        return limits.num_allowed_now

    def submit(self, path: pathlib.Path, message: str, rows: int) -> int:
        """Sends `path`, checked to hold `rows` rows, one for each test image."""
        check_submission(path, rows, "submit")
        if self.submissions_left() == 0:
            raise KaggleError(f"submit: no submission left today on {COMPETITION}; {path} is kept: send it "
                              "tomorrow with `python scripts/push.py submit FILE` (the day ends at 00:00 UTC)")
        try:
            response = self.api_call("submit", "competition_submit", str(path), message, COMPETITION, quiet=True,
                                     repeatable=False)
        except NoAnswer as error:  # a submission spends one of the day's: find it rather than send it again
            return self.submitted_without_answer(message, error)
        if response.message == UPLOAD_FAILED or not response.ref:
            raise KaggleError(f"submit: Kaggle did not take the file: {response.message}; {path} is kept")
        print(f"submitted {path} as {response.ref}: {response.message}")
        return response.ref

    def submitted_without_answer(self, message: str, error: NoAnswer):
        """The submission's ref, once Kaggle lists one with this message (unique: it names the time); an error if
        none shows up in time."""
        def listed():
            submissions = self.api_call("submit", "competition_submissions", COMPETITION)
            return next((s for s in submissions if s.description == message), None)

        sent = self.within_grace(listed)
        if sent is None:
            raise KaggleError(f"{error}, and no submission '{message}' was listed within {self.options.grace:.0f} "
                              f"s; not sent again: look at https://www.kaggle.com/competitions/{COMPETITION}/"
                              "submissions")
        print(f"{error}, but Kaggle lists it as {sent.ref}: not sent again")
        return sent.ref

    def submission(self, ref=None):
        """Submission `ref` (else the newest), or None while Kaggle does not list it yet."""
        if ref is None:
            mine = next(iter(self.api_call("score", "competition_submissions", COMPETITION) or []), None)
            if mine is None:
                raise KaggleError(f"score: no submission on {COMPETITION}")
            return mine
        try:
            return self.api_call("score", "get_submission", ref)
        except NotFound:
            return None

    def score(self, ref=None):
        """The public score of submission `ref` (else the newest), once Kaggle has one: a submission not found
        yet, or scored with no public score yet, is waited for; None when none shows within --grace."""
        seen = {"status": "not listed yet"}

        def scored(elapsed):
            mine = self.submission(ref)
            seen["status"] = status = getattr(getattr(mine, "status", None), "name", "not listed yet")
            seen["ref"] = ref or getattr(mine, "ref", None)
            if status == "ERROR":
                raise KaggleError(f"score: Kaggle could not score submission {mine.ref}: {mine.error_description}")
            if status != "COMPLETE":
                return None
            if mine.public_score:
                print(f"public score {mine.public_score}: {mine.description}")
                return mine.public_score
            # scored, the score not filled in yet; a stand-in without answers never does
            seen.setdefault("blank", elapsed)
            if elapsed - seen["blank"] > self.options.grace:
                print(f"submission {mine.ref} is scored but shows no public score after {self.options.grace:.0f} "
                      "s; `python scripts/push.py score` later")
                return ""
            return None

        found = poll(scored, min(self.options.poll, 10), self.options.timeout)
        if found is None:
            raise KaggleError(f"score: submission {seen.get('ref')} still {seen['status']}; `python scripts/push.py "
                              "score` later")
        return found or None
