"""From this repository to a leaderboard score, through the `kaggle` package's API (the road: kaggle_road/).

  python scripts/push.py run [--fast | --preset gpu]   # bundle, push, wait, fetch output, check, submit,
                                                       # score, ledger
  python scripts/push.py push | status | output | submit FILE | score   # score: the ledger's unscored run first
  python scripts/push.py run --dry-run  # nothing pushed or submitted: prints what would be sent
  python scripts/push.py run --set holdout=0   # the final submission: members trained on all 42,000 rows
  python scripts/push.py run --sessions 3 [--preset cpu]   # three sessions at once, their blend submitted once
  python scripts/push.py collect runs/<time>-sessions      # after Ctrl-C: fetch, blend, submit what finished

Credentials, as the kaggle client takes them: the API token from Kaggle's settings page (KAGGLE_API_TOKEN or
~/.kaggle/access_token), `kaggle auth login`, or a legacy kaggle.json. The kernel's owner is the user they name
(or --owner), so kernel-metadata.json is never edited by hand. Every run's files land in
runs/<time>-<bundle hash>/ and one line per run (or file submitted alone) goes to runs/ledger.jsonl, saying how
it ended; both are kept whatever fails later. Exit codes: 0 done, 2 one line said what failed, 130 Ctrl-C.
"""

import argparse
import pathlib
import sys

from digit_recognizer import config as configuration
from kaggle_road import sessions
from kaggle_road.client import KaggleError, command, set_http_timeout
from kaggle_road.road import Road, utc_stamp

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
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
                        "one Kaggle answers for: its latest run, or an older one, kaggle-cli #1200)")
    parser.add_argument("--dry-run", action="store_true", help="no network call; print what would be sent")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the kernels (default: what they may run, "
                        "from their budget, plus a queue: --dry-run says) or for a score (default: 3 hours)")
    parser.add_argument("--poll", type=float, default=30, help="seconds between status reads")
    parser.add_argument("--grace", type=float, default=120, help="seconds to look for the version or submission "
                        "that a push or submit without an answer may have made")
    parser.add_argument("--retries", type=int, default=4, help="tries for each API call that a retry can help")
    parser.add_argument("--backoff", type=float, default=2.0, help="first pause between tries, doubling")
    parser.add_argument("--http-timeout", type=float, default=60, help="seconds to wait for one HTTP answer")
    parser.add_argument("--runs-dir", default=str(ROOT / "runs"), help="where outputs and the ledger go")
    parser.add_argument("--message", default="", help="submit: the submission's description")
    return parser


def step(road: Road, options):
    """The one step the command line names."""
    if options.step == "run":
        road.run()
    elif options.step == "push":
        road.refuse_invalid_sources(road.push(road.kernel_args()))
    elif options.step in ("status", "output"):
        version = road.kernel() + (f"/{options.version}" if options.version else "")
        if options.step == "output":
            road.output(version, road.runs / f"{utc_stamp()}-output")
        else:
            status, failure = road.status(version)
            print(f"{version}: {status} {failure}".rstrip())
    elif options.step == "submit":
        if not options.file:
            raise KaggleError("submit: name the file, e.g. `python scripts/push.py submit runs/.../submission.csv`")
        road.submit_file(pathlib.Path(options.file), options.message or f"{utc_stamp()} submitted by scripts/push.py")
    elif options.step == "collect":
        if not options.file or not (pathlib.Path(options.file) / "plan.json").is_file():
            raise KaggleError("collect: name a runs/<time>-sessions folder (it holds plan.json)")
        print(sessions.summary_of(sessions.Sessions(road, pathlib.Path(options.file)).collect()))
    else:
        road.score_unscored()


def main(argv=None) -> int:
    options = parser().parse_args(argv)
    options.preset = options.preset or "full"
    if options.sessions < 1:
        parser().error("--sessions: at least 1")
    if options.step not in ("run", "push") and options.timeout is None:
        options.timeout = 3 * 3600  # a score's wait; a kernel's follows its work (Road.kernel_args)
    set_http_timeout(options.http_timeout)
    return command(lambda: step(Road(options), options))


if __name__ == "__main__":
    sys.exit(main())
