"""The `kaggle` client as the road uses it: credentials, an HTTP timeout, retries with one-line errors, and the
exit code every command of scripts/ ends with.

Nothing here knows about kernels or submissions beyond the messages that tell a user what to do about a refused
call.
"""

import contextlib
import json
import os
import pathlib
import socket
import sys
import time

COMPETITION = "digit-recognizer"
RULES = f"https://www.kaggle.com/competitions/{COMPETITION}/rules"


EXIT_ERROR = 2  # one line `error: ...` said what failed and what was spent (kernel.py's code for bad input too)
EXIT_INTERRUPTED = 130  # Ctrl-C


class KaggleError(Exception):
    """A failure the user can act on; printed as one line."""


class NoAnswer(KaggleError):
    """A request that may have arrived and taken effect, though no answer came back (or a 5xx, which Kaggle can
    send after acting): not to be sent again blindly."""


class NotFound(KaggleError):
    """404: no such kernel, version or submission (yet: Kaggle lists a new one a moment after making it)."""


def command(work) -> int:
    """Runs a command's `work()`: 0 when it is done; a KaggleError or ValueError (Kaggle's refusal, bad input, a
    setting) is one line on stderr and EXIT_ERROR; Ctrl-C is one line and EXIT_INTERRUPTED."""
    try:
        work()
    except (KaggleError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


@contextlib.contextmanager
def refusing(what: str = ""):
    """A ValueError inside the block (a bad setting, file or folder) raised as a KaggleError, after `what`."""
    try:
        yield
    except ValueError as error:
        raise KaggleError(f"{what}{error}") from None


def kaggle_json():
    """(path of kaggle.json, what it holds: a dict, or None when it is not a JSON object), or None without one."""
    config = pathlib.Path(os.environ.get("KAGGLE_CONFIG_DIR", pathlib.Path.home() / ".kaggle")) / "kaggle.json"
    if not config.is_file():
        return None
    try:
        found = json.loads(config.read_text())
    except ValueError:
        found = None
    return config, found if isinstance(found, dict) else None


def owner_from_credentials() -> str:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return os.environ["KAGGLE_USERNAME"]
    saved = kaggle_json()
    if saved:
        config, fields = saved
        missing = [name for name in ("username", "key") if not isinstance((fields or {}).get(name), str)
                   or not fields[name]]
        if missing:
            what = "not a JSON object" if fields is None else f"no {' and no '.join(missing)}"
            raise KaggleError(f"{config}: {what}; it must hold username and key: download a new one from "
                              "https://www.kaggle.com/settings (API, Create New Token)")
        return fields["username"]
    if os.environ.get("KAGGLE_API_TOKEN"):
        return ""  # the token names its user; --owner or the kernel id must say whose kernel it is
    raise KaggleError("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle "
                      "(https://www.kaggle.com/settings, API, Create New Token)")


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


def connect():
    owner_from_credentials()
    from kaggle.api.kaggle_api_extended import KaggleApi
    api = KaggleApi()
    api.authenticate()
    return api


def call(what: str, function, *args, retries=4, backoff=2.0, repeatable=True, **kwargs):
    """Calls the API, retrying what a retry can help (429, 5xx, dropped or timed-out connections). A call that
    is not `repeatable` (a push starts a GPU session, a submission spends one of the day's) is sent again only
    when it never left this machine or was refused for the rate (429); one unanswered or answered 5xx, which
    Kaggle can send after it acted, raises NoAnswer for the caller to find out what happened."""
    import requests
    for attempt in range(1, retries + 1):
        try:
            return function(*args, **kwargs)
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            if status == 401:
                raise KaggleError(f"{what}: 401, credentials rejected; check KAGGLE_USERNAME/KAGGLE_KEY") from None
            if status == 403:
                raise KaggleError(f"{what}: 403, forbidden; accept the competition rules at {RULES}") from None
            if status == 404:
                raise NotFound(f"{what}: 404, not found; check the kernel id and competition") from None
            if status >= 500 and not repeatable:
                raise NoAnswer(f"{what}: HTTP {status}, which Kaggle can answer after acting") from None
            if status != 429 and status < 500 or attempt == retries:
                raise KaggleError(f"{what}: HTTP {status} after {attempt} tries: {error}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, socket.timeout) as error:
            never_sent = isinstance(error, requests.exceptions.ConnectTimeout) or "NewConnectionError" in repr(error)
            if not repeatable and not never_sent:
                raise NoAnswer(f"{what}: no answer ({type(error).__name__})") from None
            if attempt == retries:
                raise KaggleError(f"{what}: no answer after {attempt} tries ({type(error).__name__}); "
                                  "is Kaggle reachable?") from None
        except ValueError as error:  # the client's own word, e.g. permission denied on a kernel
            raise KaggleError(f"{what}: {error}") from None
        time.sleep(backoff * 2 ** (attempt - 1))
