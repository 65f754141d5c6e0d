"""Keras's backend, loaded without TensorFlow's start-up lines.

TensorFlow prints a dozen C++ lines as it loads (oneDNN, CUDA stubs, CPU features) that look like failures, some
even at TF_CPP_MIN_LOG_LEVEL=3. Unless the user set a level below 3 to see them, whatever loads the backend inside
`start_up_hidden()` writes them to a scratch file, shown only if the loading fails. This module imports no
backend, so the run (pipeline.py) and each worker process (workers.py) can use it before theirs is loaded.
"""

import contextlib
import os
import sys
import tempfile

REAL_STDERR = []  # while start_up_hidden hides file descriptor 2: a copy of the real one


def tell(line: str) -> None:
    """`line` on the real standard error, even while the backend's start-up lines are hidden (Ctrl-C's word)."""
    sys.stderr.flush()
    os.write(REAL_STDERR[-1] if REAL_STDERR else 2, (line + "\n").encode())


@contextlib.contextmanager
def start_up_hidden():
    """A block whose C++ writes to standard error go to a scratch file, shown only if the block raises."""
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") in ("0", "1", "2"):
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    with tempfile.TemporaryFile() as scratch:
        os.dup2(scratch.fileno(), 2)  # a file descriptor, not sys.stderr: the lines come from C++
        REAL_STDERR.append(saved)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            scratch.seek(0)
            sys.stderr.write(scratch.read().decode(errors="replace"))
            raise
        finally:
            REAL_STDERR.remove(saved)
            os.dup2(saved, 2)
            os.close(saved)
