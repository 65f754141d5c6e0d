import gzip
import os
import signal
import time

import numpy as np
import pytest

from digit_recognizer import data


def make_pair(folder, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for stem in ("train", "test"):
        (folder / (f"{stem}.csv.gz" if gz else f"{stem}.csv")).write_text("x")
    return folder


def test_find_order(tmp_path):
    given, env = make_pair(tmp_path / "given"), make_pair(tmp_path / "env")
    kaggle = tmp_path / "kaggle"
    make_pair(kaggle / "competitions" / "digit-recognizer", gz=True)
    cwd = tmp_path / "cwd"
    make_pair(cwd / "input" / "digit-recognizer")
    environ = {"DIGIT_RECOGNIZER_DATA": str(env)}
    assert data.find_data(given, environ, kaggle, cwd).kind == "data-dir"
    assert data.find_data(None, environ, kaggle, cwd).train == env / "train.csv"
    found = data.find_data(None, {}, kaggle, cwd)
    assert (found.kind, found.train.name) == ("kaggle", "train.csv.gz")
    assert data.find_data(None, {}, tmp_path / "absent", cwd).kind == "local"
    sample = data.find_data(None, {}, tmp_path / "absent", tmp_path / "empty")
    assert sample.kind == "sample" and sample.train.name == "mnist_5k.csv.gz"
    assert "kaggle competitions download" in sample.describe()


def test_kaggle_mount_needs_both_files(tmp_path):
    (tmp_path / "kaggle" / "other").mkdir(parents=True)
    (tmp_path / "kaggle" / "other" / "train.csv").write_text("x")
    assert data.find_data(None, {}, tmp_path / "kaggle", tmp_path).kind == "sample"


def test_incomplete_data_dir_is_an_error(tmp_path):
    (tmp_path / "train.csv").write_text("x")
    with pytest.raises(ValueError, match="no test.csv.*--data-dir"):
        data.find_data(tmp_path, {}, tmp_path / "absent", tmp_path)


def test_both_spellings_side_by_side_are_refused(tmp_path):
    make_pair(tmp_path)
    (tmp_path / "train.csv.gz").write_text("x")
    with pytest.raises(ValueError, match="both train.csv and train.csv.gz; they may differ"):
        data.find_data(tmp_path, {}, tmp_path / "absent", tmp_path)


@pytest.mark.parametrize("make, what", [(os.mkdir, "a folder"), (os.mkfifo, "a FIFO")])
def test_a_train_csv_that_is_not_a_file_says_what_it_is(tmp_path, make, what):
    (tmp_path / "test.csv").write_text("x")
    make(tmp_path / "train.csv")
    with pytest.raises(ValueError, match=f"train.csv: {what}, not a file"):
        data.find_data(tmp_path, {}, tmp_path / "absent", tmp_path)


def test_labels_must_cover_every_digit():
    data.check_labels(np.arange(20) % 10)
    with pytest.raises(ValueError, match=r"train.csv: no rows of digit\(s\) 1, 2, .*9 \(label counts "
                                         r"\{0: 5, 1: 0"):
        data.check_labels(np.zeros(5, np.int64))


def test_too_few_rows_for_a_split_say_what_to_change():
    with pytest.raises(ValueError, match=r"5 training rows are too few for --holdout 0.1: .* or --holdout 0"):
        data.split(np.arange(5), 0.1, seed=0)
    with pytest.raises(ValueError, match="the rarest has 1"):
        data.split(np.append(np.arange(99) % 9 + 1, 0), 0.2, seed=0, flag="--validation")
    assert len(data.split(np.arange(100) % 10, 0.1, seed=0)[1]) == 10


def test_a_limit_draws_rows_from_all_of_train_so_a_sorted_file_keeps_every_digit():
    images, labels, _ = data.arrays(data.find_data(environ={}, cwd="/nonexistent"), limit=100)  # the demo sample
    assert len(labels) == 100 and len(images) == 100 and set(labels) == set(range(10))
    again, labels_again, _ = data.arrays(data.find_data(environ={}, cwd="/nonexistent"), limit=100)
    assert np.array_equal(labels, labels_again) and np.array_equal(images, again)  # seeded


def test_sample_is_competition_shaped(sample_frames):
    train, test = sample_frames
    assert list(train.columns) == data.TRAIN_COLUMNS and list(test.columns) == data.PIXELS
    assert (len(train), len(test)) == (4000, 1000)
    assert set(train["label"]) == set(range(10))


def test_reads_csv_and_gzip(competition_dir):
    frame = data.read_csv(competition_dir / "train.csv", data.TRAIN_COLUMNS)
    gz = competition_dir / "train.csv.gz"
    gz.write_bytes(gzip.compress((competition_dir / "train.csv").read_bytes()))
    assert data.read_csv(gz, data.TRAIN_COLUMNS).equals(frame)
    assert len(frame) == 300


def test_reading_aside_gives_what_cells_gives(competition_dir):
    source = data.find_data(str(competition_dir))
    aside, here = data.Reading(source, limit=100).result(), data.cells(source, limit=100)
    assert [a.dtype for a in aside] == [np.uint8, np.int64, np.uint8]
    assert all(np.array_equal(a, b) for a, b in zip(aside, here)) and len(aside[1]) == 100


def test_reading_aside_raises_the_readers_fault(competition_dir):
    (competition_dir / "test.csv").write_text("pixel0,pixel1\n1,2\n")
    with pytest.raises(ValueError, match="test.csv: line 1 \\(header\\): missing column"):
        data.Reading(data.find_data(str(competition_dir))).result()


def test_a_reader_that_dies_is_one_error_not_a_hang(competition_dir, monkeypatch):
    monkeypatch.setattr(data, "cells", lambda source, limit, threads: time.sleep(60))  # the fork inherits it
    reading = data.Reading(data.find_data(str(competition_dir)))
    os.kill(reading.process.pid, signal.SIGKILL)
    with pytest.raises(OSError, match=r"train.csv: the process reading the data ended without its rows \(exit code -9"):
        reading.result()


def test_a_reader_whose_run_ended_leaves_without_a_word(competition_dir, capfd):
    reading = data.Reading(data.find_data(str(competition_dir)))  # 300 rows: more than a pipe's buffer holds
    reading.receiver.close()  # the run stopped (Ctrl-C on its process alone): nobody reads
    reading.process.join(timeout=30)
    assert reading.process.exitcode == 0 and capfd.readouterr().err == ""


def test_images_labels_split(sample_frames):
    train, _ = sample_frames
    images = data.to_images(train)
    assert images.shape == (4000, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    labels = train["label"].to_numpy()
    kept, held = data.split(labels, 0.1, seed=3)
    assert (len(kept), len(held)) == (3600, 400) and not set(kept) & set(held)
    # stratified: every digit keeps its share of the hold-out, within one row
    expected = np.bincount(labels) * 0.1
    assert np.all(np.abs(np.bincount(labels[held]) - expected) <= 1)
    assert np.array_equal(data.split(labels, 0.1, seed=3)[1], held)  # seeded
    assert len(data.split(labels, 0.0, seed=3)[1]) == 0
    counts = data.label_counts(labels)
    assert sum(counts.values()) == 4000 and len(counts) == 10


HEADER = ",".join(data.TRAIN_COLUMNS)
GOOD = "3," + ",".join(["0"] * 784)


def row(label="3", **cells):
    values = ["0"] * 784
    for index, value in cells.items():
        values[int(index[1:])] = value
    return ",".join([label] + values)


FAULTS = {
    # name: (file text, pattern the message must match: file, line and column where there is one)
    "missing column": (HEADER.rsplit(",", 1)[0] + "\n" + GOOD.rsplit(",", 1)[0], r"line 1 \(header\): missing column\(s\) pixel783"),
    "extra column": (HEADER + ",pixel784\n" + GOOD + ",0", r"line 1 \(header\): unexpected column\(s\) pixel784"),
    "text cell": (f"{HEADER}\n{GOOD}\n{row(p5='dark')}", r"line 3, column pixel5: 'dark' is not an integer"),
    "empty cell": (f"{HEADER}\n{GOOD}\n{row(p7='')}", r"line 3, column pixel7: an empty cell"),
    "pixel above 255": (f"{HEADER}\n{row(p0='256')}", r"line 2, column pixel0: 256 is outside 0-255"),
    "negative pixel": (f"{HEADER}\n{GOOD}\n{GOOD}\n{row(p9='-1')}", r"line 4, column pixel9: -1 is outside 0-255"),
    "fractional pixel": (f"{HEADER}\n{row(p2='3.5')}", r"line 2, column pixel2: '3.5' is not an integer"),
    "pixel past int64": (f"{HEADER}\n{row(p3='99999999999999999999')}",
                         r"line 2, column pixel3: 99999999999999999999 is outside 0-255"),
    "label above 9": (f"{HEADER}\n{GOOD}\n{row(label='10')}", r"line 3, column label: 10 is outside 0-9"),
    "short row": (f"{HEADER}\n{GOOD}\n" + GOOD.rsplit(",", 2)[0], r"line 3, column pixel782: an empty cell"),
    "long row": (f"{HEADER}\n{GOOD}\n{GOOD},0", r"Expected 785 fields in line 3, saw 786"),
    "empty file": ("", r"the file is empty"),
    "header only": (HEADER + "\n", r"a header but no data rows"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_names_file_line_column(tmp_path, fault):
    text, pattern = FAULTS[fault]
    path = tmp_path / "train.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"^train\.csv: .*" + pattern) as caught:
        data.read_csv(path, data.TRAIN_COLUMNS)
    assert "\n" not in str(caught.value)


def test_whole_floats_pass_as_integers(tmp_path):
    (tmp_path / "train.csv").write_text(f"{HEADER}\n{row(p1='7.0')}")
    frame = data.read_csv(tmp_path / "train.csv", data.TRAIN_COLUMNS)
    assert frame["pixel1"].tolist() == [7]


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, gzip.compress(b"")[:10]])
def test_not_csv(tmp_path, content):
    path = tmp_path / ("test.csv.gz" if content[:2] == b"\x1f\x8b" else "test.csv")
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{path.name}: "):
        data.read_csv(path, data.PIXELS)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        data.read_csv(tmp_path / "test.csv", data.PIXELS)
