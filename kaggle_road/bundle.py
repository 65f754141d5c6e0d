"""build/kernel.py: one self-contained file that Kaggle can run, carrying the digit_recognizer package
(scripts/bundle.py writes it alone; the road, before each push).

The package is zipped (fixed timestamps, sorted names: the same source gives a byte-identical file), base64-encoded
into the script and imported with zipimport from a temporary file; standard library only, no pip, no internet. Then
kernel.py's own source runs in the same process, so an exception fails the kernel visibly. The bundle carries the
*.py files of the package and kernel.py, nothing else: never credentials, never data.
"""

import base64
import hashlib
import io
import pathlib
import subprocess
import zipfile

from digit_recognizer import submit
from kaggle_road.client import secret_values

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "digit_recognizer"

LOADER = '''\
# Digit Recognizer kernel, bundled by scripts/bundle.py from commit {commit}; bundle hash {digest}.
# The package digit_recognizer travels zipped below and is imported from a temporary file with zipimport.
import atexit, base64, os, signal, sys, tempfile

BUNDLE_COMMIT = "{commit}"
BUNDLE_HASH = "{digest}"
BUNDLE_ARGS = {args!r}  # baked-in flags; flags given on the command line come after them, so they win
PACKAGE_ZIP = (
{chunks}
)


def _install_bundle():
    handle, path = tempfile.mkstemp(prefix="digit_recognizer-", suffix=".zip")
    with os.fdopen(handle, "wb") as out:
        out.write(base64.b64decode("".join(PACKAGE_ZIP)))
    sys.path.insert(0, path)
    atexit.register(os.remove, path)
    os.environ["DIGIT_RECOGNIZER_BUNDLE_ZIP"] = path  # kernel.py's Ctrl-C handler, which exits at once, removes it
    # SIGTERM (a cancelled Kaggle run, a killed job) exits through Python, so the zip above is removed too
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    os.environ["DIGIT_RECOGNIZER_BUNDLE"] = BUNDLE_HASH  # summary.json records it
    print(f"bundle {{BUNDLE_HASH}} from commit {{BUNDLE_COMMIT}}", flush=True)
    sys.argv[1:1] = BUNDLE_ARGS


_install_bundle()

# ---- kernel.py, verbatim ----
'''


def package_zip() -> bytes:
    """The package's .py files in a deterministic zip: sorted, fixed timestamps and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((ROOT / PACKAGE).glob("*.py")):
            info = zipfile.ZipInfo(f"{PACKAGE}/{path.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def source_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", PACKAGE, "kernel.py"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    commit = done.stdout.strip() or "unknown"
    return commit + ("+changes" if dirty else "")


def build(args=(), out=ROOT / "build" / "kernel.py") -> tuple[pathlib.Path, str]:
    """Writes the bundle; returns its path and content hash (of the package zip, kernel.py and the args)."""
    archive = package_zip()
    kernel = (ROOT / "kernel.py").read_text()
    digest = hashlib.sha256(archive + kernel.encode() + repr(list(args)).encode()).hexdigest()[:12]
    encoded = base64.b64encode(archive).decode()
    chunks = "\n".join(f'    "{encoded[i:i + 100]}"' for i in range(0, len(encoded), 100))
    text = LOADER.format(commit=source_commit(), digest=digest, args=list(args), chunks=chunks) + kernel
    for value in secret_values():
        if value in text:
            raise ValueError("bundle: a credential value appears in the source; remove it before bundling")
    return submit.write_text(out, text), digest
