"""Members saved by separate runs, pooled as one ensemble and scored, without training: `benchmark.py pool`
reads holdout_predictions.npz files (runs with the same hold-out) and oof folders (their saved fold-K.npz), and
`benchmark.py oof` scores its folds with the same code; `benchmark.py compare` sets two such ensembles side by
side, image by image."""

import math
import pathlib
import re

import numpy as np

from digit_recognizer import predictions


def joined_folds(folds, numbers) -> dict:
    """Saved oof folds (loaded fold-K.npz, for K in `numbers`) as one run whose hold-out is all their rows; `fold`
    says which fold scored each row."""
    return {"rows": np.concatenate([f["rows"] for f in folds]), "labels": np.concatenate([f["labels"] for f in folds]),
            "families": folds[0]["families"], "members": np.concatenate([f["members"] for f in folds], axis=1),
            "fold": np.concatenate([np.full(len(f["labels"]), number) for number, f in zip(numbers, folds)])}


def load_pool(paths) -> dict:
    """The members saved in several runs' holdout_predictions.npz, as if one run had trained them all: the
    hold-out's rows (None from files older than rows) and labels, every member's softmax and family. The runs
    must share their hold-out. A folder is an oof run's --out: its saved folds, of those every folder given has
    saved, so that oof runs still under way are pooled on the same rows."""
    paths = [pathlib.Path(path) for path in paths]
    folders = [path for path in paths if path.is_dir()]
    common = set.intersection(*({p.name for p in folder.glob("fold-*.npz")} for folder in folders)) if folders else ()
    if folders and not common:
        raise ValueError(f"{', '.join(map(str, folders))}: no fold saved in every one of these oof folders")
    numbers = sorted(int(name[5:-4]) for name in common)  # fold-10 after fold-9
    saved = [joined_folds([predictions.load(path / f"fold-{k}.npz") for k in numbers], numbers)
             if path in folders else predictions.load(path) for path in paths]
    rows, labels = saved[0].get("rows"), saved[0]["labels"]
    for path, run in zip(paths, saved):
        # files written before the rows were saved are checked by their labels alone
        same_rows = "rows" not in run or rows is None or np.array_equal(run["rows"], rows)
        if not (same_rows and np.array_equal(run["labels"], labels)):
            raise ValueError(f"{path}: its hold-out is not the one in {paths[0]}; pool runs made with the same "
                             "--holdout and --holdout-seed")
    return {"rows": rows, "labels": labels,
            # which fold scored each row, when every path is an oof folder: they share their folds
            "fold": saved[0]["fold"] if len(folders) == len(paths) else None,
            "members": np.concatenate([run["members"] for run in saved]).astype(np.float64),
            "families": np.concatenate([run["families"] for run in saved]),
            "runs": np.concatenate([np.full(len(run["members"]), number) for number, run in enumerate(saved)])}


AVERAGES = ("arithmetic", "geometric")


def log_probabilities(members) -> np.ndarray:
    """log of softmax outputs, a class a member called impossible (an underflowed 0) floored at 1e-12, not -inf."""
    return np.log(np.clip(members, 1e-12, None))


def averaged(members, average="arithmetic") -> np.ndarray:
    """The ensemble's (rows, 10) probabilities: the arithmetic mean of `members` (members, rows, 10), as the
    kernel's ensemble takes it, or their normalised geometric mean, where one member sure that a class is
    impossible counts for more."""
    if average == "geometric":
        joined = np.exp(log_probabilities(members).mean(axis=0))
        return joined / joined.sum(axis=1, keepdims=True)
    return members.mean(axis=0)


def ensemble_misses(members, labels, average="arithmetic") -> np.ndarray:
    """Which rows the `average` (see `averaged`) of `members` reads wrong."""
    return averaged(members, average).argmax(axis=1) != labels


def named(average) -> dict:
    """The results row's note of a geometric average; rows written before there was a choice were arithmetic."""
    return {} if average == "arithmetic" else {"average": average}


def pool(pooled, average="arithmetic") -> dict:
    """Each pooled member's hold-out accuracy, the ensemble of all, of each family alone and of each run alone
    (each ensemble by that `average` of its members), and the images every member misses."""
    labels, members, families = pooled["labels"], pooled["members"], pooled["families"]
    runs = pooled.get("runs", np.zeros(len(members), int))  # which run (file or folder given) each member is from

    def scored(chosen, missed=None):
        missed = ensemble_misses(members[chosen], labels, average) if missed is None else missed
        return {"accuracy": float(np.mean(~missed)), "errors": int(missed.sum()), "members": int(chosen.sum())}
    wrong = members.argmax(axis=2) != labels
    ensemble_wrong = ensemble_misses(members, labels, average)
    return {"benchmark": "pool", "rows": int(len(labels)), **named(average),
            "member_holdout_accuracy": [float(np.mean(~w)) for w in wrong], "families": families.tolist(),
            "ensemble": scored(np.ones(len(members), bool), ensemble_wrong),
            **{f"ensemble_{family}": scored(families == family) for family in sorted(set(families))},
            # each run's members alone, in the order given: runs of one family (bn, bn with deskew) told apart
            "ensemble_each_run": [scored(runs == run) for run in range(runs.max() + 1)],
            # no average of these members can score above 1 - wrong_by_every_member / rows
            "wrong_by_every_member": int(wrong.all(axis=0).sum()),
            # for each ensemble error, the share of members that read it right, most first: an error that few
            # members get right is not one that more members of the same kind will fix
            "ensemble_errors_share_right": sorted((round(float(share), 2) for share in
                                                   1 - wrong[:, ensemble_wrong].mean(axis=0)), reverse=True)}


def stacked(pooled, strengths) -> list:
    """A learned weighting in place of the average, scored out of fold: for each strength C (scikit-learn's
    inverse regularisation: small C keeps the weights near even), a multinomial logistic regression on every
    member's log-probabilities, fitted on the other folds' rows and scored on each fold's, so that no row is read
    by a fit that saw its label (the members' outputs are out of fold already: no member saw the row either)."""
    from sklearn.linear_model import LogisticRegression
    labels, folds = pooled["labels"], pooled["fold"]
    numbers = [] if folds is None else np.unique(folds)
    if len(numbers) < 2:
        raise ValueError("--stack: give oof folders only, with at least two folds saved in every one: the stacker "
                         "is fitted on some folds' rows and scored on the others'")
    features = log_probabilities(pooled["members"]).transpose(1, 0, 2).reshape(len(labels), -1)
    scored = []
    for strength in strengths:
        wrong = np.zeros(len(labels), bool)
        for fold in numbers:
            held = folds == fold
            stacker = LogisticRegression(C=strength, max_iter=1000).fit(features[~held], labels[~held])
            wrong[held] = stacker.predict(features[held]) != labels[held]
        scored.append({"C": strength, "errors": int(wrong.sum()), "accuracy": float(np.mean(~wrong))})
    return scored


def member_curve(pooled, draws=200, seed=0, average="arithmetic") -> dict:
    """How the ensemble's errors fall as members are added: for each size k, the mean, fewest and most errors of
    `draws` random k-member subsets (the one subset at full size). Then errors ~ floor + slope / k, fitted by
    least squares to the means, the usual empirical reading of an ensemble: a part of the error that averaging
    more members takes away as 1/k (each member's own noise), and a part they share, so `floor` is a rough guess
    at what many more members like these would make. A heuristic fit, not a bound."""
    labels, members = pooled["labels"], pooled["members"]
    generator, sizes, means, curve = np.random.default_rng(seed), range(1, len(members) + 1), [], []
    for k in sizes:
        subsets = [generator.choice(len(members), k, replace=False) for _ in range(draws if k < len(members) else 1)]
        errors = [int(ensemble_misses(members[subset], labels, average).sum()) for subset in subsets]
        means.append(float(np.mean(errors)))
        curve.append({"members": k, "mean_errors": round(means[-1], 1), "fewest": min(errors), "most": max(errors)})
    floor, slope = np.linalg.lstsq(np.c_[np.ones(len(means)), 1 / np.array(sizes)], np.array(means), rcond=None)[0]
    return {"curve": curve, "floor": round(float(floor), 1), "slope": round(float(slope), 1), "draws": draws}


def split_choice(item: str):
    """`PATH` -> (PATH, None): all of that run's members; `PATH:1,3` -> (PATH, [0, 2]): its members 1 and 3,
    counted from 1 as the training logs count them. A file or folder that is there by the whole name is a PATH,
    even when that name ends in `:digits`."""
    chosen = re.fullmatch(r"(.+):(\d+(?:,\d+)*)", str(item))
    if not chosen or pathlib.Path(item).exists():
        return str(item), None
    return chosen[1], [int(number) - 1 for number in chosen[2].split(",")]


def sign_test(only_a: int, only_b: int) -> float:
    """Two-sided exact binomial test on the images just one of two ensembles misses: how often a split at least
    this uneven comes about when both are equally likely to miss each of them."""
    total = only_a + only_b
    if not total:
        return 1.0
    return min(1.0, 2 * sum(math.comb(total, k) for k in range(min(only_a, only_b) + 1)) / 2**total)


def compare(side_a, side_b, averages=("arithmetic", "arithmetic")) -> dict:
    """Two ensembles scored on the same rows, each a list of PATH or PATH:K,L items (a run, or some of its
    members) joined by its entry of `averages`: the errors of each, the images only one of them misses, and the
    sign test on those. Out-of-fold folders are read on the folds all of them have saved, so one still under way
    compares on its rows so far."""
    sides = [[split_choice(item) for item in side] for side in (side_a, side_b)]
    paths = list(dict.fromkeys(path for side in sides for path, _ in side))
    pooled = load_pool(paths)
    labels, scored = pooled["labels"], []
    for side, average in zip(sides, averages):
        chosen = []
        for path, members in side:
            in_run = np.flatnonzero(pooled["runs"] == paths.index(path))
            if members and not all(0 <= member < len(in_run) for member in members):
                raise ValueError(f"{path}: it holds members 1 to {len(in_run)}, not {[m + 1 for m in members]}")
            chosen += list(in_run if members is None else in_run[members])
        wrong = ensemble_misses(pooled["members"][chosen], labels, average)
        scored.append((wrong, {"members": len(chosen), **named(average)}))
    (wrong_a, about_a), (wrong_b, about_b) = scored
    only_a, only_b = int((wrong_a & ~wrong_b).sum()), int((~wrong_a & wrong_b).sum())
    row = {"benchmark": "compare", "rows": int(len(labels)),
           "a": {"runs": list(map(str, side_a)), **about_a, "errors": int(wrong_a.sum())},
           "b": {"runs": list(map(str, side_b)), **about_b, "errors": int(wrong_b.sum())},
           "only_a_wrong": only_a, "only_b_wrong": only_b, "sign_test_p": round(sign_test(only_a, only_b), 4)}
    if pooled["fold"] is not None:  # oof folders: is a gap spread over the folds, or one fold's doing?
        folds = sorted(set(pooled["fold"].tolist()))
        row["folds"] = folds
        for side, wrong in (("a", wrong_a), ("b", wrong_b)):
            row[side]["errors_each_fold"] = [int(wrong[pooled["fold"] == fold].sum()) for fold in folds]
    return row


def draw_pooled_errors(pooled, data_dir, path, average="arithmetic"):
    """The pooled ensemble's worst hold-out errors, the images read back from train.csv by their rows."""
    from digit_recognizer import data, report
    if pooled["rows"] is None:
        raise ValueError("--picture needs the hold-out's rows: put first a holdout_predictions.npz that has them "
                         "(written since --holdout-seed came in)")
    train_frame, _ = data.load(data.find_data(data_dir))
    return report.worst_errors(data.to_images(train_frame.iloc[pooled["rows"]]), pooled["labels"],
                               averaged(pooled["members"], average), pathlib.Path(path))
