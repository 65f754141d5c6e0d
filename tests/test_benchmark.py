"""experiments/benchmark.py's pool (members saved by separate runs, averaged as one ensemble: experiments/pooling.py), oof
(one run per fold) and the flags fast hands kernel.py."""

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from experiments import benchmark, out_of_fold, pooling

from digit_recognizer import ensemble
from digit_recognizer.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def save(path, members, families, labels, rows=None):
    rows = np.arange(len(labels)) if rows is None else rows
    np.savez(path, rows=rows, labels=labels, families=np.array(families), members=np.array(members, np.float32))
    return path


def one_hot(classes, sure=0.9):
    return np.where(np.eye(10)[classes] == 1, sure, (1 - sure) / 9)


def test_folds_hold_out_every_row_once():
    labels = np.repeat(np.arange(10), 7)  # 70 rows, 7 of each digit
    folds = out_of_fold.stratified_folds(labels, 7, seed=1)
    held = np.concatenate([h for _, h in folds])
    assert np.array_equal(np.sort(held), np.arange(70))
    for kept, fold in folds:
        assert np.array_equal(np.bincount(labels[fold]), np.ones(10)) and not set(kept) & set(fold)
    with pytest.raises(ValueError, match="8 folds of 70 rows; use 2 to 7"):
        out_of_fold.stratified_folds(labels, 8, seed=1)


def test_pool_averages_members_across_runs(tmp_path):
    labels = np.array([0, 1, 2, 3])
    right = one_hot(labels)
    wrong_last = one_hot([0, 1, 2, 4], sure=0.6)  # wrong on the last row, unsure
    wrong_first = one_hot([5, 1, 2, 3], sure=0.6)
    first = save(tmp_path / "a.npz", [wrong_last], ["bn"], labels)
    second = save(tmp_path / "b.npz", [wrong_first, right], ["deep", "bn"], labels)
    pooled = pooling.pool(pooling.load_pool([first, second]))
    assert pooled["member_holdout_accuracy"] == [0.75, 0.75, 1.0]
    assert pooled["families"] == ["bn", "deep", "bn"]
    assert pooled["ensemble"] == {"accuracy": 1.0, "errors": 0, "members": 3}
    assert pooled["ensemble_deep"] == {"accuracy": 0.75, "errors": 1, "members": 1}
    assert pooled["ensemble_bn"] == {"accuracy": 1.0, "errors": 0, "members": 2}
    assert pooled["ensemble_each_run"] == [{"accuracy": 0.75, "errors": 1, "members": 1},
                                           {"accuracy": 1.0, "errors": 0, "members": 2}]
    assert pooled["wrong_by_every_member"] == 0
    assert pooled["ensemble_errors_share_right"] == []


def test_pool_tells_how_many_members_read_each_ensemble_error_right(tmp_path):
    labels = np.array([0, 1])
    unsure_right = one_hot(labels, sure=0.4)
    sure_wrong_first = one_hot([7, 1], sure=0.9)  # two members outvote the one that reads row 0 right
    run = save(tmp_path / "a.npz", [unsure_right, sure_wrong_first, sure_wrong_first], ["bn"] * 3, labels)
    pooled = pooling.pool(pooling.load_pool([run]))
    assert pooled["ensemble"]["errors"] == 1
    assert pooled["ensemble_errors_share_right"] == [0.33]


def test_pool_refuses_runs_with_other_holdouts(tmp_path):
    labels = np.array([0, 1, 2, 3])
    first = save(tmp_path / "a.npz", [one_hot(labels)], ["bn"], labels)
    other = save(tmp_path / "b.npz", [one_hot(labels)], ["bn"], labels, rows=np.array([4, 5, 6, 7]))
    with pytest.raises(ValueError, match=r"b\.npz: its hold-out is not the one in .*a\.npz.*--holdout-seed"):
        pooling.load_pool([first, other])


def test_pool_of_oof_folders_takes_the_folds_every_folder_saved(tmp_path):
    labels = np.arange(6) % 10
    for folder, folds in (("a", (1, 2, 10)), ("b", (10, 2))):
        (tmp_path / folder).mkdir()
        for fold in folds:  # fold K holds rows K and K + 1: fold-10 must come after fold-2, not before it
            rows = np.array([fold, fold + 1])
            save(tmp_path / folder / f"fold-{fold}.npz", [one_hot(rows % 10)], ["bn"], rows % 10, rows=rows)
    pooled = pooling.load_pool([tmp_path / "a", tmp_path / "b"])
    assert pooled["rows"].tolist() == [2, 3, 10, 11] and pooled["members"].shape == (2, 4, 10)
    assert pooling.pool(pooled)["ensemble_each_run"][1] == {"accuracy": 1.0, "errors": 0, "members": 1}
    (tmp_path / "c").mkdir()
    save(tmp_path / "c" / "fold-1.npz", [one_hot(labels[:2])], ["bn"], labels[:2])
    with pytest.raises(ValueError, match="no fold saved in every one of these oof folders"):
        pooling.load_pool([tmp_path / "b", tmp_path / "c"])


def test_pool_counts_images_every_member_misses_and_draws_them(tmp_path, competition_dir):
    labels = pd.read_csv(competition_dir / "train.csv")["label"].to_numpy()[:4]
    missed_first = one_hot(np.r_[(labels[0] + 1) % 10, labels[1:]])
    run = save(tmp_path / "a.npz", [missed_first, missed_first], ["bn", "bn"], labels, rows=np.arange(4))
    pooled = pooling.load_pool([run])
    assert pooling.pool(pooled)["wrong_by_every_member"] == 1
    assert pooling.pool(pooled)["ensemble_errors_share_right"] == [0.0]
    picture = pooling.draw_pooled_errors(pooled, competition_dir, tmp_path / "errors.png")
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_stacker_learns_to_trust_the_member_the_average_outvotes(tmp_path):
    # a member unsure but right beside one sure but wrong (it reads every digit as the next): the average follows
    # the wrong one everywhere, a weighting fitted on the other fold follows the right one
    labels = np.arange(40) % 10
    (tmp_path / "oof").mkdir()
    for fold, held in ((1, slice(0, 20)), (2, slice(20, 40))):
        save(tmp_path / "oof" / f"fold-{fold}.npz", [one_hot(labels[held], sure=0.3),
             one_hot((labels[held] + 1) % 10, sure=0.9)], ["bn", "bn"], labels[held], rows=np.arange(40)[held])
    pooled = pooling.load_pool([tmp_path / "oof"])
    assert pooling.pool(pooled)["ensemble"]["errors"] == 40
    assert pooling.stacked(pooled, [1.0]) == [{"C": 1.0, "errors": 0, "accuracy": 1.0}]
    with pytest.raises(ValueError, match="--stack: give oof folders only"):
        pooling.stacked(pooling.load_pool([tmp_path / "oof" / "fold-1.npz"]), [1.0])


def test_member_curve_counts_errors_by_ensemble_size_and_fits_its_floor():
    # three members, each unsure-wrong on its own six rows and sure-wrong with the others on the last two: one
    # member makes 8 errors, any two outvote each other's own misses down to the shared 2
    labels = np.arange(20) % 10
    members = np.array([one_hot(labels)] * 3)
    for member in range(3):
        own = np.arange(6 * member, 6 * member + 6)
        members[member, own] = one_hot((labels[own] + 1) % 10, sure=0.6)
    members[:, 18:] = one_hot((labels[18:] + 1) % 10)
    curve = pooling.member_curve({"labels": labels, "members": members}, draws=5)
    assert [(k["members"], k["mean_errors"], k["fewest"], k["most"]) for k in curve["curve"]] == [
        (1, 8.0, 8, 8), (2, 2.0, 2, 2), (3, 2.0, 2, 2)]
    same = pooling.member_curve({"labels": labels, "members": np.array([members[0]] * 4)}, draws=5)
    assert (same["floor"], same["slope"]) == (8.0, 0.0)  # copies of one member: no fall at all


def test_compare_counts_the_images_only_one_side_misses(tmp_path):
    labels = np.arange(10)
    misses_three = one_hot(np.r_[[1, 2, 3], labels[3:]], sure=0.6)  # wrong on rows 0-2, unsure
    run = save(tmp_path / "a.npz", [misses_three, one_hot(labels)], ["bn", "bn"], labels)
    row = pooling.compare([f"{run}:1"], [f"{run}:2"])
    assert (row["a"]["errors"], row["b"]["errors"], row["a"]["members"]) == (3, 0, 1)
    assert (row["only_a_wrong"], row["only_b_wrong"], row["sign_test_p"]) == (3, 0, 0.25)  # 2 x (1/2)^3
    both = pooling.compare([run], [f"{run}:1,2"])  # the sure member outvotes the unsure one: no errors
    assert (both["a"]["members"], both["a"]["errors"], both["b"]["errors"], both["sign_test_p"]) == (2, 0, 0, 1.0)
    with pytest.raises(ValueError, match=r"a\.npz: it holds members 1 to 2, not \[3\]"):
        pooling.compare([f"{run}:3"], [run])


def test_geometric_average_lets_one_sure_member_rule_out_a_class(tmp_path):
    labels = np.array([0])
    sure_zero = np.r_[0.99, 0.01, np.zeros(8)][None]  # two members read 0 ...
    sure_not_zero = np.r_[1e-6, 1 - 1e-6, np.zeros(8)][None]  # ... one is sure it is not: 0.66 / 0.34 against
    members = np.array([sure_zero, sure_zero, sure_not_zero])  # (0.99^2 1e-6)^(1/3) = 0.01 / 0.046
    assert not pooling.ensemble_misses(members, labels)[0] and pooling.ensemble_misses(members, labels, "geometric")[0]
    run = save(tmp_path / "a.npz", members, ["bn"] * 3, labels)
    row = pooling.compare([run], [run], averages=("geometric", "arithmetic"))
    assert (row["a"]["average"], row["a"]["errors"], row["b"]["errors"]) == ("geometric", 1, 0)
    assert "average" not in row["b"]  # rows written before there was a choice were arithmetic
    assert pooling.pool(pooling.load_pool([run]), "geometric")["ensemble"]["errors"] == 1
    assert np.allclose(pooling.averaged(members, "geometric").sum(axis=1), 1)  # probabilities, for --picture


def test_compare_of_oof_folders_counts_each_sides_errors_fold_by_fold(tmp_path):
    for folder, wrong_rows in (("a", [0, 1, 4]), ("b", [5])):  # fold K holds rows 2K - 2 and 2K - 1
        (tmp_path / folder).mkdir()
        for fold in (1, 3):  # fold 2 not saved yet: compared on folds 1 and 3
            rows = np.array([2 * fold - 2, 2 * fold - 1])
            read = np.where(np.isin(rows, wrong_rows), (rows + 1) % 10, rows % 10)
            save(tmp_path / folder / f"fold-{fold}.npz", [one_hot(read)], ["bn"], rows % 10, rows=rows)
    row = pooling.compare([tmp_path / "a"], [tmp_path / "b"])
    assert row["folds"] == [1, 3] and row["rows"] == 4
    assert (row["a"]["errors_each_fold"], row["b"]["errors_each_fold"]) == ([2, 1], [0, 1])
    assert (row["only_a_wrong"], row["only_b_wrong"]) == (3, 1)
    npz = save(tmp_path / "c.npz", [one_hot(np.arange(3))], ["bn"], np.arange(3))
    assert "folds" not in pooling.compare([npz], [npz])  # one hold-out: no folds to count by


def test_compare_reads_a_path_that_ends_in_digits_as_a_path(tmp_path):
    labels = np.arange(3)
    run = save(tmp_path / "run:2", [one_hot(labels)], ["bn"], labels)  # np.savez adds .npz: name it exactly
    run.with_suffix(".npz").rename(run)
    assert pooling.split_choice(str(run)) == (str(run), None)
    assert pooling.split_choice(f"{run}:1") == (str(run), [0])


def test_sign_test_is_the_two_sided_exact_binomial():
    assert pooling.sign_test(0, 9) == 2 / 2**9 and pooling.sign_test(9, 0) == 2 / 2**9
    assert pooling.sign_test(5, 5) == 1.0 and pooling.sign_test(0, 0) == 1.0
    assert abs(pooling.sign_test(30, 16) - 0.0541) < 1e-4  # a split the benchmarks README reports as p 0.05


def test_compare_needs_two_sides():
    with pytest.raises(SystemExit, match="compare needs two sides"):
        benchmark.bench_compare(argparse.Namespace(npz=["a.npz", "b.npz"]))


def oof_setup(tmp_path, sample_frames, monkeypatch):
    """60 train rows (six of each digit), 40 test rows, and training replaced by a stand-in whose member 1 reads
    every held row right and member 2, less sure, calls them all 0. Returns the labels, oof's args and a list
    that gets each training call's row count."""
    frame, test = sample_frames
    frame = frame.groupby("label").head(6).sample(frac=1, random_state=0)
    frame.to_csv(tmp_path / "train.csv", index=False)
    test.iloc[:40].to_csv(tmp_path / "test.csv", index=False)
    trained = []

    def fake_training(config, rows):
        trained.append(len(rows.labels))
        test_images, holdout = rows.test_images, rows.holdout
        members = [one_hot(holdout[1]), one_hot(np.zeros(len(holdout[1]), int), sure=0.6)]
        test_probabilities = np.full((len(test_images), 10), 0.1)
        test_probabilities[:5] = one_hot(np.full(5, 3), sure=0.9995)  # five test images it is sure are 3s
        return ensemble.Result(test_probabilities=test_probabilities, holdout_probabilities=None,
                               member_accuracy=[], ensemble_accuracy=0.9, histories=[], train_seconds=1.0,
                               images_per_second=50.0, device="cpu", precision="float32",
                               member_holdout_probabilities=members)
    monkeypatch.setattr(ensemble, "train_members", fake_training)
    monkeypatch.setattr(ensemble, "train_ensemble", fake_training)
    args = argparse.Namespace(preset="fast", epochs_override=None, members=2, model=None, set=[],
                              data_dir=str(tmp_path), folds=3, fold=None, out=str(tmp_path / "oof"), teacher=None)
    return frame["label"].to_numpy(), args, trained


def test_oof_scores_every_row_by_the_fold_that_held_it_out(tmp_path, sample_frames, monkeypatch):
    labels, args, trained = oof_setup(tmp_path, sample_frames, monkeypatch)
    row = benchmark.bench_oof(args)
    assert trained == [40, 40, 40]
    assert row["rows"] == 60 and row["fold_ensemble_accuracy"] == [1.0] * 3
    assert row["member_holdout_accuracy"] == [1.0, 0.1]
    pooled = pooling.load_pool([tmp_path / "oof" / "out_of_fold_predictions.npz"])
    assert np.array_equal(pooled["rows"], np.arange(60)) and np.array_equal(pooled["labels"], labels)
    assert pooled["members"].shape == (2, 60, 10)
    assert len(pd.read_csv(tmp_path / "oof" / "submission.csv")) == 40


def test_oof_goes_on_from_the_folds_it_saved(tmp_path, sample_frames, monkeypatch, capsys):
    _, args, trained = oof_setup(tmp_path, sample_frames, monkeypatch)
    args.fold = [2]
    assert benchmark.bench_oof(args) is None  # folds 1 and 3 still to train: no row yet
    assert "1 of 3 folds saved, 20 rows: members [1.0, 0.1]" in capsys.readouterr().out
    assert trained == [40] and sorted(p.name for p in (tmp_path / "oof").iterdir()) == ["fold-2.npz"]
    args.fold = None
    row = benchmark.bench_oof(args)
    assert trained == [40, 40, 40] and row["member_holdout_accuracy"] == [1.0, 0.1]
    args.members = 1  # another config must not be scored with the folds the first one saved
    with pytest.raises(SystemExit, match="fold-1.npz was trained with other settings"):
        benchmark.bench_oof(args)


def test_oof_with_a_teacher_adds_the_test_images_its_members_of_that_fold_are_sure_of(
        tmp_path, sample_frames, monkeypatch, capsys):
    _, args, trained = oof_setup(tmp_path, sample_frames, monkeypatch)
    benchmark.bench_oof(args)  # the teacher: sure of test images 0-4 in every fold
    del trained[:]
    args.out, args.teacher, args.set = str(tmp_path / "student"), [str(tmp_path / "oof")], ["pseudo=0.999"]
    row = benchmark.bench_oof(args)
    assert trained == [45, 45, 45] and row["teachers"] == [str(tmp_path / "oof")]
    assert "teachers: 2 members that held out fold 3" in capsys.readouterr().out
    args.set = ["pseudo=0.99995"]  # a saved student fold must not be taken for one taught at another confidence
    with pytest.raises(SystemExit, match="other settings"):
        benchmark.bench_oof(args)
    args.set, args.folds, args.out = ["pseudo=0.999"], 2, str(tmp_path / "halves")  # teachers of other folds
    with pytest.raises(SystemExit, match="fold-1.npz holds out other rows than this fold"):
        benchmark.bench_oof(args)


def test_oof_with_a_teacher_stops_before_training_when_it_lacks_a_fold_or_a_confidence(
        tmp_path, sample_frames, monkeypatch):
    _, args, trained = oof_setup(tmp_path, sample_frames, monkeypatch)
    args.fold = [2]
    benchmark.bench_oof(args)  # a teacher with fold 2 only
    del trained[:]
    args.fold, args.out, args.teacher = None, str(tmp_path / "student"), [str(tmp_path / "oof")]
    with pytest.raises(SystemExit, match="--teacher needs --set pseudo=C"):
        benchmark.bench_oof(args)
    args.set = ["pseudo=0.999"]
    with pytest.raises(SystemExit, match=r"--teacher .*oof: no fold-1.npz; train that fold there first"):
        benchmark.bench_oof(args)
    assert trained == []


def test_a_fold_saved_before_a_config_field_came_in_counts_it_as_its_default(tmp_path):
    held = np.arange(4)
    older = dataclasses.asdict(Config(epochs=15))
    del older["members_per_step"]  # the field did not exist when the fold was saved: one member a step
    np.savez(tmp_path / "fold-1.npz", rows=held, settings=json.dumps(older))
    out_of_fold.check_fold(tmp_path / "fold-1.npz", json.dumps(dataclasses.asdict(Config(epochs=15))), held)
    with pytest.raises(ValueError, match=r"other settings or folds \(members_per_step 1 \(now 2\)\)"):
        out_of_fold.check_fold(tmp_path / "fold-1.npz",
                               json.dumps(dataclasses.asdict(Config(epochs=15, members_per_step=2))), held)


def test_a_fold_saved_with_a_retired_lever_counts_only_if_it_was_off(tmp_path):
    held = np.arange(4)
    now = json.dumps(dataclasses.asdict(Config(epochs=15)))
    for deskew, same in ((False, True), (True, False)):
        older = dict(dataclasses.asdict(Config(epochs=15)), deskew=deskew, augment_in="auto")
        np.savez(tmp_path / "fold-1.npz", rows=held, settings=json.dumps(older))
        if same:
            out_of_fold.check_fold(tmp_path / "fold-1.npz", now, held)
        else:
            with pytest.raises(ValueError, match=r"deskew True \(now None\)"):
                out_of_fold.check_fold(tmp_path / "fold-1.npz", now, held)


@pytest.mark.parametrize("arguments, says",
                         [([], "usage"), (["oof"], "output folder"), (["oof", "out"], "process count")])
def test_gpu_checks_says_what_it_needs(arguments, says):
    script = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "gpu_checks.sh"
    done = subprocess.run(["bash", str(script), *arguments], capture_output=True, text=True)
    assert done.returncode != 0 and says in done.stderr


def test_fast_passes_set_to_kernel_and_refuses_a_field_that_is_not_one(monkeypatch):
    commands = []

    def failing_run(command, **options):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, "", "kernel said no")
    monkeypatch.setattr(benchmark.subprocess, "run", failing_run)
    args = argparse.Namespace(data_dir=None, seeds=[42, 7], set=["batch_size=64"])
    with pytest.raises(SystemExit, match="kernel said no"):
        benchmark.bench_fast(args)
    assert commands[0][-4:] == ["--batch-size", "64", "--seed", "42"] and "--fast" in commands[0]
    args.set = ["batch=64"]
    with pytest.raises(SystemExit, match="--set batch=64: expected FIELD=VALUE"):
        benchmark.bench_fast(args)
    assert len(commands) == 1


@pytest.mark.parametrize("flags, widest", [("fpu avx2 avx512f avx512_bf16", " avx512_bf16"),
                                           ("fpu sse4_2 avx2 fma", " avx2"), ("fpu sse4_2", "")])
def test_a_row_names_the_widest_vector_instructions_of_its_machine(tmp_path, flags, widest):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert benchmark.machine(cpuinfo).endswith(" cores" + widest)
    assert benchmark.machine(tmp_path / "absent").endswith(" cores")


@pytest.mark.slow
def test_the_gpu_check_runs_at_toy_sizes(competition_dir, tmp_path):
    """The GPU check gets one try on a lent machine: here its code runs end to end at toy sizes."""
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "gpu_check.py"), "--quick", "--data-dir",
                           str(competition_dir), "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads((tmp_path / "results.jsonl").read_text())
    assert [rate["members"] for rate in row["bn"]] == [1, 2] and len(row["gpu_family"]) == 2
    assert row["budget_model"]["estimated_s"] > 0
    assert row["budget_model"]["measured_s"] > row["budget_model"]["measured_train_s"] > 0
    assert row["gpu_preset_forecast_min"]["two_gpus"] > 0
