"""The `kaggle` client as the road uses it: credentials, an HTTP timeout, retries with one-line errors, and the
exit code every command of scripts/ ends with.

Credentials are the client's business: an API token (KAGGLE_API_TOKEN, the token or a file holding it, or
~/.kaggle/access_token), `kaggle auth login`'s cached OAuth, or a legacy kaggle.json or KAGGLE_USERNAME and
KAGGLE_KEY. The road asks the authenticated client whose they are. Nothing here knows about kernels or
submissions beyond the messages that tell a user what to do about a refused call.
"""

import contextlib
import io
import json
import os
import pathlib
import socket
import sys
import time

COMPETITION = "digit-recognizer"
RULES = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"
SETTINGS = "https://www.kaggle.com/settings"
NO_CREDENTIALS = ("no Kaggle credentials: run `kaggle auth login`, or put the API token from "
                  f"{SETTINGS} (API, Generate New Token) in ~/.kaggle/access_token or KAGGLE_API_TOKEN; a legacy "
                  "kaggle.json in ~/.kaggle, or KAGGLE_USERNAME and KAGGLE_KEY, work too")
# what a 403 means depends on what was asked (a call's `what`)
FORBIDDEN = {
    "push": "the credentials' user may not write this kernel: --owner must be that user (and a token and a "
            "kaggle.json of two users also answer 403: keep one)",
    "submit": f"accept the competition rules at {RULES}",
    "limits": f"accept the competition rules at {RULES}",
}

EXIT_ERROR = 2  # one line `error: ...` said what failed and what was spent (kernel.py's code for bad input too)
EXIT_INTERRUPTED = 130  # Ctrl-C


class KaggleError(Exception):
    """A failure the user can act on; printed as one line."""


class NoAnswer(KaggleError):
    """A request that may have arrived and taken effect, though no answer came back (or a 5xx, which Kaggle can
    send after acting): not to be sent again blindly."""


class NotFound(KaggleError):
    """404: no such kernel, version or submission (yet: Kaggle lists a new one a moment after making it)."""


class Refused(KaggleError):
    """401 or 403: the credentials, or what they may do. Asking again does not help."""


class LinkExpired(KaggleError):
    """403 or 404 from a file link Kaggle handed out (they are signed, and expire): list the files again."""


def command(work) -> int:
    """Runs a command's `work()`: 0 when it is done; a KaggleError or ValueError (Kaggle's refusal, bad input, a
    setting) is one line on stderr and EXIT_ERROR; Ctrl-C is one line (what keeps running, if it says) and
    EXIT_INTERRUPTED."""
    try:
        work()
    except (KaggleError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as stop:
        print(f"interrupted: {stop}" if str(stop) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


@contextlib.contextmanager
def refusing(what: str = ""):
    """A ValueError or OSError inside the block (a bad setting, file or folder) raised as a KaggleError, after
    `what`."""
    try:
        yield
    except ValueError as error:
        raise KaggleError(f"{what}{error}") from None
    except OSError as error:
        raise KaggleError(f"{what}{error.filename or ''}: {error.strerror or error}") from None


def config_folder() -> pathlib.Path:
    """Where the client looks for kaggle.json: KAGGLE_CONFIG_DIR, else ~/.kaggle, else on Linux (no ~/.kaggle)
    $XDG_CONFIG_HOME/kaggle or ~/.config/kaggle, as kaggle_api_extended.KaggleApi does."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return pathlib.Path(os.environ["KAGGLE_CONFIG_DIR"])
    folder = pathlib.Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not folder.exists():
        return pathlib.Path(os.environ.get("XDG_CONFIG_HOME") or pathlib.Path.home() / ".config") / "kaggle"
    return folder


def kaggle_json():
    """(path of kaggle.json, what it holds: a dict, or None when it is not a JSON object), or None without one."""
    config = config_folder() / "kaggle.json"
    if not config.is_file():
        return None
    try:
        found = json.loads(config.read_text())
    except ValueError:
        found = None
    return config, found if isinstance(found, dict) else None


def check_kaggle_json():
    """A kaggle.json the client would read must hold a username and a key: one line before any work if not."""
    saved = kaggle_json()
    if not saved:
        return
    config, fields = saved
    missing = [name for name in ("username", "key") if not isinstance((fields or {}).get(name), str)
               or not fields[name]]
    if missing:
        what = "not a JSON object" if fields is None else f"no {' and no '.join(missing)}"
        raise KaggleError(f"{config}: {what}; it must hold username and key: remove it to use a token, or "
                          f"download a new one from {SETTINGS} (API)")


def secret_values() -> list[str]:
    """Credential values on this machine (keys, tokens): none of them may travel in a bundle."""
    found = [os.environ.get("KAGGLE_KEY", "")]
    token = os.environ.get("KAGGLE_API_TOKEN", "")
    home = pathlib.Path.home() / ".kaggle"  # where kagglesdk's get_access_token_from_env looks
    for path in (token, config_folder() / "access_token", home / "access_token", home / "access_token.txt"):
        try:
            found.append(pathlib.Path(path).read_text().strip() if path and pathlib.Path(path).is_file() else "")
        except OSError:
            pass
    found.append(token)
    saved = kaggle_json()
    if saved and saved[1]:
        found.append(str(saved[1].get("key", "")))
    return [value for value in found if len(value) >= 8]


HTTP_TIMEOUT = {"seconds": 60.0}  # what set_http_timeout last said


def set_http_timeout(seconds: float):
    """The kaggle client sends every request with no timeout (requests passes None down explicitly, so
    socket.setdefaulttimeout does not reach it): give requests' adapter a default, `seconds`."""
    import requests.adapters
    HTTP_TIMEOUT["seconds"] = seconds
    send = requests.adapters.HTTPAdapter.send
    if getattr(send, "with_default_timeout", False):  # patched once per process; later calls change the number
        return

    def send_with_timeout(self, request, timeout=None, **kwargs):
        return send(self, request, timeout=timeout or HTTP_TIMEOUT["seconds"], **kwargs)

    send_with_timeout.with_default_timeout = True
    requests.adapters.HTTPAdapter.send = send_with_timeout


def connect(retries=4, backoff=2.0):
    """The client, authenticated as it authenticates for every tool (a token is checked with Kaggle: that read
    is retried like any other), and the user its credentials name."""
    check_kaggle_json()
    with contextlib.redirect_stdout(io.StringIO()):  # importing `kaggle` authenticates, and prints help when it can't
        from kaggle.api.kaggle_api_extended import KaggleApi
    api = KaggleApi()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            call("credentials", api.authenticate, retries=retries, backoff=backoff)
    except SystemExit:  # the client's own way to say it found none
        raise KaggleError(NO_CREDENTIALS) from None
    user = api.get_config_value("username")
    if not user:
        raise KaggleError(NO_CREDENTIALS)
    return api, user


def refusal(what: str, status: int) -> str:
    if status == 401:
        return f"{what}: 401, credentials rejected: make a new token at {SETTINGS} (API), or `kaggle auth login`"
    why = FORBIDDEN.get(what, "the credentials' user may not do this")
    return f"{what}: 403, forbidden: {why}"


def call(what: str, function, *args, retries=4, backoff=2.0, repeatable=True, **kwargs):
    """Calls the API, retrying what a retry can help (429, after its Retry-After; 5xx; dropped or timed-out
    connections). A call that is not `repeatable` (a push starts a GPU session, a submission spends one of the
    day's) is sent again only when it never left this machine or was refused for the rate (429); one unanswered
    or answered 5xx, which Kaggle can send after it acted, raises NoAnswer for the caller to find out what
    happened."""
    import requests
    for attempt in range(1, retries + 1):
        pause = backoff * 2 ** (attempt - 1)
        try:
            return function(*args, **kwargs)
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            link = error.response is not None and "/api/v1/" not in str(error.response.url or "/api/v1/")
            if status in (403, 404) and link:
                raise LinkExpired(f"{what}: a file link answered {status} (Kaggle's links expire)") from None
            if status in (401, 403):
                raise Refused(refusal(what, status)) from None
            if status == 404:
                raise NotFound(f"{what}: 404, not found; check the kernel id and competition") from None
            if status >= 500 and not repeatable:
                raise NoAnswer(f"{what}: HTTP {status}, which Kaggle can answer after acting") from None
            if status != 429 and status < 500 or attempt == retries:
                raise KaggleError(f"{what}: HTTP {status} after {attempt} tries: {error}") from None
            after = error.response.headers.get("Retry-After", "") if error.response is not None else ""
            pause = max(pause, float(after)) if after.isdigit() else pause
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, socket.timeout) as error:
            never_sent = isinstance(error, requests.exceptions.ConnectTimeout) or "NewConnectionError" in repr(error)
            if not repeatable and not never_sent:
                raise NoAnswer(f"{what}: no answer ({type(error).__name__})") from None
            if attempt == retries:
                raise KaggleError(f"{what}: no answer after {attempt} tries ({type(error).__name__}); "
                                  "is Kaggle reachable?") from None
        except ValueError as error:  # the client's own word, e.g. permission denied on a kernel
            raise KaggleError(f"{what}: {error}") from None
        time.sleep(pause)
