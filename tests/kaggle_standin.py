"""An offline stand-in of Kaggle's API, for tests and for rehearsing the road before spending GPU quota.

  python tests/kaggle_standin.py --data-dir ../shared/digit-recognizer run --fast   # scripts/push.py run --fast
                                             # through it, the kernel run for real; then the stand-in stops
  python tests/kaggle_standin.py --port 8765 --data-dir ../shared/digit-recognizer [--answers answers.csv]
                                             # serves until Ctrl-C, and prints the environment a client needs

The unmodified kaggle client sends `POST http://localhost/api/v1/<service>/<Method>` with JSON; the proxy setting
(KAGGLE_API_ENVIRONMENT=LOCALHOST, HTTP_PROXY) routes it here. Responses are built with kagglesdk's own types, so
field names and enums are the client's. A pushed script runs in a scratch folder as on Kaggle: no arguments,
KAGGLE_KERNEL_RUN_TYPE set, its working folder as the current one, the competition data under an input root
(`DIGIT_RECOGNIZER_KAGGLE_INPUT` points data.py there). The tests run it with training faked
(tests/fake_kernel.py, `--fake-kernel`); everything else about the kernel is real.

Kaggle's ways, as the kaggle 2.2.5 client and its issue tracker show them:
- Credentials: HTTP Basic with a legacy key, or a bearer API token whose user IntrospectToken names
  (kaggle_api_extended.KaggleApi._authenticate_with_access_token; kagglesdk's KaggleHttpClient.BearerAuth).
- Status and output read `user/slug/N` for version N (sent as version label `vN`). Without a version, kaggle-cli's
  docs say they answer for the latest run; users saw an older one while a new push ran (kaggle-cli #1200): the
  stand-in answers for the newest version that has finished, the unkind case.
- A title over 50 characters is answered 500 (kaggle-cli PR #179).
- Output files are links that expire (answered 403): `files=403x1`.
- The weekly GPU quota is read with GetAcceleratorQuotaStatistics (`kaggle quota`): 30 hours here.
- A push can succeed and list its competition source as invalid (rules not accepted): the kernel runs without data.
- Private kernels (ours) are listed only in the user's own view (`kernels list --mine`, kaggle-cli #538).
- Submissions are limited per day (`daily`, 5); GetSubmissionLimits says how many are left, and answers all zeros
  for a user not yet on a team.
- Batch sessions running at once are capped (`cap`): a push over it answers "Maximum batch GPU session count".
Faults (`--fault` or `StandIn.faults`): `SaveKernel=401` (any method = an HTTP status, every time),
`SaveKernel=429x2` (the first 2 calls only), `after.SaveKernel=502x1` (the call takes effect, then answers 502),
`slow=2.5` (seconds before each answer; `slow.SaveKernel=2.5` for one method: the call still takes effect),
`outage.GetKernelSessionStatus=40` (that method answers 503 for 40 s from its first call), `no_version=1` (a push
starts its run but answers no version number, which the client reads as 0: "shouldn't happen", it says),
`crash=1` (kernels fail; `crash=-s2`: only those whose name ends so), `save_error=...` (push answers an error),
`invalid_sources=1` (push lists the competition as an invalid source), `no_team=1` (limits all zero),
`empty_score=2` (the first 2 reads of a scored submission give no public score), `files=500` (output downloads
fail), `upload=400` (the submission upload fails).
"""

import argparse
import base64
import http.server
import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from kagglesdk.competitions.types.competition_api_service import (
    ApiCreateSubmissionResponse, ApiListSubmissionsResponse, ApiStartSubmissionUploadResponse, ApiSubmission,
    ApiSubmissionLimits)
from kagglesdk.kernels.types.kernels_api_service import (
    ApiGetKernelSessionStatusResponse, ApiKernelMetadata, ApiKernelSessionOutputFile,
    ApiListKernelSessionOutputResponse, ApiListKernelsResponse, ApiSaveKernelRequest, ApiSaveKernelResponse)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
from kagglesdk.competitions.types.submission_status import SubmissionStatus
from kagglesdk.kernels.types.kernels_api_service import ApiAcceleratorQuota, ApiGetAcceleratorQuotaStatisticsResponse
from kagglesdk.security.types.oauth_service import IntrospectTokenResponse

import standin_http  # beside this file: the HTTP front

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Run:
    """One pushed version of a kernel, running in its own scratch folder."""

    def __init__(self, version: int, folder: pathlib.Path):
        self.version, self.folder, self.status, self.log, self.failure = version, folder, "QUEUED", "", ""


class StandIn:
    def __init__(self, data_dir, answers=None, user="tester", key="standin-key", scratch=None, port=0, fake=False):
        self.data_dir, self.answers = pathlib.Path(data_dir), answers
        self.fake = fake  # run pushed kernels with training faked (tests/fake_kernel.py)
        self.user, self.key, self.token = user, key, f"{user}-standin-token"
        basic = base64.b64encode(f"{user}:{key}".encode()).decode()  # as HTTP Basic auth sends them
        self.authorizations = {f"Basic {basic}", f"Bearer {self.token}"}
        self.scratch = pathlib.Path(scratch or tempfile.mkdtemp(prefix="kaggle-standin-"))
        self.faults: dict = {}
        self.runs: dict[str, list[Run]] = {}  # kernel slug -> its versions
        self.uploads: dict[str, bytes] = {}
        self.submissions: list[dict] = []
        self.daily = 5  # submissions a day, as the competition allows
        self.scoring_seconds = 0.5  # a submission is PENDING this long
        self.cap = None  # batch sessions that may run at once (Kaggle: 2 to 4 GPU sessions); None: no cap
        self.counter = itertools.count(1)
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), standin_http.handler(self))
        self.port = self.server.server_address[1]

    # ---- life cycle ----
    def start(self):
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()  # stop() waits a poll
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def environment(self) -> dict:
        """What a client needs to be sent here."""
        return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": f"http://127.0.0.1:{self.port}",
                "NO_PROXY": "", "no_proxy": "", "KAGGLE_USERNAME": self.user, "KAGGLE_KEY": self.key}

    # ---- faults ----
    def fault_status(self, method: str):
        """The HTTP status injected for this call of `method`, or None."""
        if f"outage.{method}" in self.faults:
            began = self.faults.setdefault(f"outage_began.{method}", time.time())
            if time.time() - began < float(self.faults[f"outage.{method}"]):
                return 503
        spec = self.faults.get(method)
        if spec is None:
            return None
        status, _, times = str(spec).partition("x")
        if times:
            left = int(times)
            if left <= 0:
                return None
            self.faults[method] = f"{status}x{left - 1}"
        return int(status)

    # ---- the kernel ----
    def new_version(self, slug: str) -> Run:
        with self.lock:
            versions = self.runs.setdefault(slug, [])
            run = Run(len(versions) + 1, self.scratch / slug.replace("/", "_") / f"v{len(versions) + 1}")
            versions.append(run)
        (run.folder / "working").mkdir(parents=True)
        return run

    def run_kernel(self, slug: str, text: str, with_data=True) -> Run:
        run = self.new_version(slug)
        crash = str(self.faults.get("crash", ""))
        if crash == "1" or crash and slug.endswith(crash):
            text = "raise RuntimeError('injected crash')\n" + text
        threading.Thread(target=self._execute, args=(run, text, with_data), daemon=True).start()
        return run

    def finished_version(self, slug: str, files: dict) -> Run:
        """A version that ran before this test: COMPLETE, with `files` (name -> text) as its output."""
        run = self.new_version(slug)
        for name, text in files.items():
            (run.folder / "working" / name).write_text(text)
        run.status = "COMPLETE"
        return run

    def _execute(self, run: Run, text: str, with_data: bool):
        working, data = run.folder / "working", run.folder / "input" / "digit-recognizer"
        data.mkdir(parents=True)
        for path in self.data_dir.glob("*.csv*") if with_data else ():
            os.symlink(path.resolve(), data / path.name)
        script = run.folder / "script.py"
        script.write_text(text)
        run.status = "RUNNING"
        env = dict(os.environ, KAGGLE_KERNEL_RUN_TYPE="Batch", DIGIT_RECOGNIZER_KAGGLE_INPUT=str(run.folder / "input"),
                   TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "HTTP_PROXY", "KAGGLE_API_ENVIRONMENT",
                     "DIGIT_RECOGNIZER_DATA"):
            env.pop(name, None)  # a kernel on Kaggle holds none of the pusher's secrets, nor a data folder of theirs
        if self.fake:  # forked from a process that has the libraries loaded: a second saved a kernel
            import fake_kernel
            out, err = run.folder / "stdout.txt", run.folder / "stderr.txt"
            process = fake_kernel.started(script, working, env, out, err)
            process.join()
            returncode, stdout, stderr = process.exitcode, out.read_text(), err.read_text()
        else:
            done = subprocess.run([sys.executable, str(script)], cwd=working, env=env, capture_output=True, text=True)
            returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
        run.log = stdout + stderr
        run.failure = "" if returncode == 0 else (stderr.strip().splitlines() or ["failed"])[-1]
        run.status = "COMPLETE" if returncode == 0 else "ERROR"

    def running(self) -> int:
        return sum(run.status in ("QUEUED", "RUNNING") for versions in self.runs.values() for run in versions)

    def version(self, body) -> Run:
        """The version a status or output request names (`vN`), else the newest one that has finished."""
        kernel = f"{body['userName']}/{body['kernelSlug']}"
        versions = self.runs.get(kernel)
        if not versions:
            raise LookupError(f"no kernel {kernel}")
        label = body.get("versionLabel")
        if label:
            number = int(label.removeprefix("v"))
            if not 1 <= number <= len(versions):
                raise LookupError(f"no version {label} of {kernel}")
            return versions[number - 1]
        return next((run for run in reversed(versions) if run.status in ("COMPLETE", "ERROR")), versions[-1])

    # ---- scoring ----
    def score(self, content: bytes):
        if not self.answers:
            return None
        import io

        import pandas as pd
        truth = pd.read_csv(self.answers)
        guess = pd.read_csv(io.BytesIO(content))
        merged = truth.merge(guess, on="ImageId", suffixes=("_true", ""))
        return round(float((merged["Label"] == merged["Label_true"]).sum() / len(truth)), 5)

    # ---- the API: one method per Kaggle request name, JSON in, kagglesdk object out ----
    def SaveKernel(self, body):
        request = ApiSaveKernelRequest.from_dict(body)
        response = ApiSaveKernelResponse()
        if self.faults.get("save_error"):
            response.error = str(self.faults["save_error"])
            return response
        if len(request.new_title or "") > 50:
            raise OverflowError(f"title {request.new_title!r} is over 50 characters")  # answered 500
        if self.cap is not None and self.running() >= self.cap:
            response.error = f"Maximum batch GPU session count of {self.cap} reached"
            return response
        refused = self.faults.get("invalid_sources")
        run = self.run_kernel(request.slug, request.text, with_data=not refused)
        response.ref = request.slug
        if not self.faults.get("no_version"):
            response.version_number = run.version
        response.url = f"http://localhost/code/{request.slug}"
        if refused:
            response.invalid_competition_sources = list(request.competition_data_sources)
        return response

    def IntrospectToken(self, body):
        response = IntrospectTokenResponse()
        if body.get("token") == self.token:
            response.active, response.username = True, self.user
        return response

    def GetAcceleratorQuotaStatistics(self, body):
        import datetime
        response, quota = ApiGetAcceleratorQuotaStatisticsResponse(), ApiAcceleratorQuota()
        quota.total_time_allowed, quota.time_used = datetime.timedelta(hours=30), datetime.timedelta(hours=4)
        response.gpu_quota = quota
        return response

    def ListKernels(self, body):
        """The user's own kernels: pushed private, they are listed only in the user's own view (`--mine`)."""
        response = ApiListKernelsResponse()
        response.kernels = []
        if body.get("group") != "PROFILE":
            return response
        for kernel, versions in self.runs.items():
            if kernel.startswith(f"{self.user}/") and body.get("search", "") in kernel:
                item = ApiKernelMetadata()
                item.ref, item.current_version_number = kernel, len(versions)
                response.kernels.append(item)
        return response

    def GetKernelSessionStatus(self, body):
        run = self.version(body)
        response = ApiGetKernelSessionStatusResponse()
        response.status = KernelWorkerStatus[run.status]
        if run.failure:
            response.failure_message = run.failure
        return response

    def ListKernelSessionOutput(self, body):
        run = self.version(body)
        response = ApiListKernelSessionOutputResponse()
        response.files = []
        working = run.folder / "working"
        for path in sorted(p for p in working.rglob("*") if p.is_file()):
            item = ApiKernelSessionOutputFile()
            item.file_name = str(path.relative_to(working))
            item.url = f"http://localhost/_files/{urllib.parse.quote(str(path.relative_to(self.scratch)))}"
            response.files.append(item)
        response.log = run.log
        return response

    def StartSubmissionUpload(self, body):
        response = ApiStartSubmissionUploadResponse()
        response.token = f"blob-{next(self.counter)}"
        response.create_url = f"http://localhost/_upload/{response.token}"
        return response

    def CreateSubmission(self, body):
        token = body.get("blobFileTokens", "")
        if token not in self.uploads:
            raise LookupError(f"no upload {token}")
        if self.today() >= self.daily:
            raise PermissionError(f"Your team has used its daily Submission allowance ({self.daily})")
        ref = next(self.counter)
        self.submissions.insert(0, {"ref": ref, "description": body.get("submissionDescription", ""),
                                    "content": self.uploads[token], "created": time.time()})
        response = ApiCreateSubmissionResponse()
        response.message, response.ref = "Successfully submitted to Digit Recognizer", ref
        return response

    def today(self) -> int:
        return sum(time.time() - entry["created"] < 24 * 3600 for entry in self.submissions)

    def GetSubmissionLimits(self, body):
        limits = ApiSubmissionLimits()
        if not self.faults.get("no_team"):
            limits.num_today, limits.num_total = self.today(), len(self.submissions)
            limits.num_allowed_now = max(0, self.daily - self.today())
        return limits

    def listed(self, entry) -> ApiSubmission:
        item = ApiSubmission()
        item.ref, item.description = entry["ref"], entry["description"]
        item.file_name = "submission.csv"
        if time.time() - entry["created"] < self.scoring_seconds:  # scoring takes a moment, as on Kaggle
            item.status = SubmissionStatus.PENDING
        else:
            item.status = SubmissionStatus.COMPLETE
            score = self.score(entry["content"])
            empty = int(self.faults.get("empty_score", 0)) > 0  # scored, the public score not yet filled in
            self.faults["empty_score"] = max(0, int(self.faults.get("empty_score", 0)) - 1)
            item.public_score = "" if score is None or empty else f"{score:.5f}"
        return item

    def ListSubmissions(self, body):
        response = ApiListSubmissionsResponse()
        response.submissions = [self.listed(entry) for entry in self.submissions]
        return response

    def GetSubmission(self, body):
        entry = next((entry for entry in self.submissions if entry["ref"] == body.get("ref")), None)
        if entry is None:
            raise LookupError(f"no submission {body.get('ref')}")
        return self.listed(entry)

    def data_zip(self) -> bytes:
        archive = shutil.make_archive(str(self.scratch / "digit-recognizer"), "zip", self.data_dir)
        return pathlib.Path(archive).read_bytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="default: 8765 to serve, any free one to rehearse")
    parser.add_argument("--data-dir", required=True, help="competition files the pushed kernel will find")
    parser.add_argument("--answers", help="ImageId,Label of the test set, to score submissions")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE", help="inject a fault")
    parser.add_argument("--cap", type=int, help="batch sessions that may run at once (default: no cap)")
    parser.add_argument("--daily", type=int, default=5, help="submissions a day (default: %(default)s)")
    parser.add_argument("--fake-kernel", action="store_true", help="fake the kernel's training (tests/fake_kernel.py)")
    parser.add_argument("push", nargs=argparse.REMAINDER, help="scripts/push.py's arguments (e.g. run --fast): run it "
                        "through the stand-in, then stop; its ledger goes to a scratch folder unless --runs-dir")
    args = parser.parse_args()
    standin = StandIn(args.data_dir, args.answers, port=args.port or (0 if args.push else 8765), fake=args.fake_kernel)
    standin.cap, standin.daily = args.cap, args.daily
    standin.faults.update(item.split("=", 1) for item in args.fault)
    if args.push:
        return rehearse(standin.start(), args.push)
    print("stand-in of Kaggle's API on 127.0.0.1:%d; point the client at it with:" % standin.port)
    print("  " + " ".join(f"{k}={v}" for k, v in standin.environment().items()))
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        standin.stop()
    return 0


def rehearse(standin, push: list) -> int:
    """scripts/push.py with `push` through the stand-in: its exit code."""
    if "--runs-dir" not in push:
        push = [*push, "--runs-dir", str(standin.scratch / "runs")]
    if "--grace" not in push and not standin.answers:  # no answers, no score: looking for one is no use
        push = [*push, "--grace", "5"]
    print(f"stand-in of Kaggle's API on 127.0.0.1:{standin.port}: python scripts/push.py {' '.join(push)}", flush=True)
    try:
        own = {k: v for k, v in os.environ.items() if k != "KAGGLE_CONFIG_DIR"}
        # the stand-in's token: the client would otherwise send a token of yours it finds in ~/.kaggle
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "push.py"), *push],
                              env=dict(own, **standin.environment(), KAGGLE_API_TOKEN=standin.token)).returncode
    finally:
        standin.stop()


if __name__ == "__main__":
    sys.exit(main())
