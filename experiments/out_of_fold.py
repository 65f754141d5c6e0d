"""`benchmark.py oof`: the recipe trained once per stratified fold of train, each fold scored by members that
never saw it, so every one of the 42,000 train rows is scored once. Folds are saved as they end and never trained
again, so a run can stop and go on later. With `--teacher`, each fold's members also learn the test images that
other oof runs' members *of the same fold* label confidently: pseudo-labels from a strong ensemble, scored without
leaking the fold's labels into them.
"""

import dataclasses
import json
import pathlib
import resource

import numpy as np

from digit_recognizer import predictions
from experiments.pooling import joined_folds, load_pool, pool


def stratified_folds(labels: np.ndarray, count: int, seed: int) -> list:
    """Stratified, seeded (kept, held) row indices, `count` of them, whose held parts cover every row once: an
    out-of-fold score reads all of train, not a tenth of it."""
    rarest = np.bincount(labels).min()
    if not 2 <= count <= rarest:
        raise ValueError(f"folds: {count} folds of {len(labels)} rows; use 2 to {rarest} "
                         "(the count of the rarest digit)")
    from sklearn.model_selection import StratifiedKFold
    return list(StratifiedKFold(count, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def teacher_probabilities(teachers, fold, held) -> tuple[np.ndarray, int]:
    """The test predictions of every member of fold `fold` in the `teachers` oof folders, averaged member by
    member (a folder's file holds its members' average), and how many members that is. Those members were
    trained on the rows this fold trains on, so their labels carry nothing of the rows it holds out."""
    total, members = 0.0, 0
    for folder in teachers:
        path = pathlib.Path(folder) / f"fold-{fold}.npz"
        if not path.exists():
            raise ValueError(f"--teacher {folder}: no {path.name}; train that fold there first (benchmark.py oof "
                             f"--fold {fold} with its own settings)")
        saved = predictions.load(path)
        if not np.array_equal(saved["rows"], held):
            raise ValueError(f"--teacher {folder}: {path.name} holds out other rows than this fold; a teacher must "
                             "be split with the same --folds and --holdout-seed")
        count = saved["members"].shape[0]
        total, members = total + saved["test_probabilities"].astype(np.float64) * count, members + count
    return total / members, members


def train_fold(config, settings, images, labels, test_images, kept, held, path, teacher=None) -> None:
    """One fold's members, trained on `kept` (plus the test images that `teacher`, test probabilities from
    `teacher_probabilities`, labels confidently) and scored on `held`, saved with the fold's test predictions and
    timings to `path` (fold-K.npz). `settings` is the config as JSON, kept to check against."""
    from digit_recognizer import data, ensemble
    rows = data.Rows(images[kept], labels[kept], test_images, (images[held], labels[held]))
    if teacher is not None:  # the teachers' ensemble stands in for the first round that --pseudo alone trains
        result = ensemble.train_ensemble(config, ensemble.pseudo_labelled(config, rows, teacher))
    else:
        result = ensemble.train_members(config, rows)
    predictions.write_members(
        path, predictions.families(config, result.member_indices), result.member_holdout_probabilities, held,
        labels[held],
        test_probabilities=result.test_probabilities.astype(np.float16), train_seconds=result.train_seconds,
        images_per_second=result.images_per_second, device=result.device, precision=result.precision,
        settings=settings)
    print(f"{path.name}: ensemble {result.ensemble_accuracy:.5f}, members {result.member_accuracy}", flush=True)


# research levers taken out of Config (the research log has their evidence) and the values with which a saved fold
# trained as the code without them does
RETIRED = {"width": (1.0,), "elastic": (0.0,), "cutout": (0,), "deskew": (False,), "ink_width": (0.0,),
           "weight_decay": (0.0,), "augment_in": ("auto", "model")}


def check_fold(path, settings, held) -> None:
    """A saved fold must hold the rows this fold holds out and come from the same config (`settings`, as JSON).
    A field added to Config since the fold was saved counts there as its default, which is how that code ran; a
    retired field at its neutral value is as if absent."""
    from digit_recognizer.config import Config
    saved, defaults = predictions.load(path), dataclasses.asdict(Config())
    then, now = {**defaults, **json.loads(str(saved["settings"]))}, {**defaults, **json.loads(settings)}
    then = {name: value for name, value in then.items() if value not in RETIRED.get(name, ())}
    # over both sides' fields: one saved by a field since removed still differs, as it did when compared whole
    changed = ", ".join(f"{name} {then.get(name)} (now {now.get(name)})" for name in sorted(then.keys() | now.keys())
                        if then.get(name) != now.get(name))
    if not (np.array_equal(saved["rows"], held) and not changed):
        raise ValueError(f"{path} was trained with other settings or folds ({changed or 'other rows'}); add "
                         "--set FIELD=VALUE to match it, give another --out or delete it")


def run(args, config, overrides, default_out) -> dict | None:
    """Trains the folds not yet saved in `args.out` (`args.fold`: only those); once all are saved, their members'
    predictions go to out_of_fold_predictions.npz, which `pool` reads, and the test predictions of all folds,
    averaged, to submission.csv, and the results row is returned (None while folds remain)."""
    from digit_recognizer import data, ensemble, submit
    teachers = [str(pathlib.Path(folder)) for folder in args.teacher or []]
    if teachers and not config.pseudo:
        raise ValueError("--teacher needs --set pseudo=C: the confidence a teacher's label must reach, e.g. 0.999")
    # stored in each fold file and checked on the way back; teachers only when given, so older folds still match
    settings = json.dumps({**dataclasses.asdict(config), **({"teachers": teachers} if teachers else {})})
    out = pathlib.Path(args.out) if args.out else default_out
    paths = [out / f"fold-{fold}.npz" for fold in range(1, args.folds + 1)]
    submit.writable_folder(out)
    images, labels, test_images = data.arrays(data.find_data(args.data_dir), config.limit)
    # seeded by --holdout-seed, not --seed: runs with other member seeds score the same folds
    splits = stratified_folds(labels, args.folds, config.holdout_seed)
    for fold in args.fold or []:
        if not 1 <= fold <= args.folds:
            raise ValueError(f"--fold {fold}: folds are numbered 1 to {args.folds}")
    taught = {}  # fold -> (the teachers' test probabilities, their member count), for each fold to train
    for fold, (path, (_, held)) in enumerate(zip(paths, splits), 1):
        if path.exists():
            check_fold(path, settings, held)
        elif teachers and fold in (args.fold or range(1, args.folds + 1)):
            taught[fold] = teacher_probabilities(teachers, fold, held)  # a missing fold stops the run now, not hours in
    for fold in args.fold or range(1, args.folds + 1):
        kept, held = splits[fold - 1]
        if paths[fold - 1].exists():
            print(f"fold {fold}/{args.folds}: saved in {paths[fold - 1]}, not trained again", flush=True)
            continue
        print(f"fold {fold}/{args.folds}: {len(kept)} training rows, {len(held)} scored", flush=True)
        teacher, count = taught.get(fold, (None, 0))
        if teachers:
            print(f"teachers: {count} members that held out fold {fold}", flush=True)
        train_fold(config, settings, images, labels, test_images, kept, held, paths[fold - 1], teacher)
    done = [fold for fold, path in enumerate(paths, 1) if path.exists()]
    missing = [fold for fold in range(1, args.folds + 1) if fold not in done]
    folds = [predictions.load(paths[fold - 1]) for fold in done]
    if missing:
        if folds:  # a figure over the rows scored so far, printed, not recorded
            so_far = pool(joined_folds(folds, done))
            print(f"{len(folds)} of {len(paths)} folds saved, {so_far['rows']} rows: "
                  f"members {so_far['member_holdout_accuracy']}, ensemble {so_far['ensemble']}")
        print(f"folds {missing} not trained yet: the same command without --fold trains them and scores all")
        return None
    members = np.zeros((config.members, len(labels), 10), np.float32)
    for fold in folds:
        members[:, fold["rows"]] = fold["members"]
    saved = predictions.write_members(out / "out_of_fold_predictions.npz",
                                      predictions.families(config, range(config.members)), members,
                                      np.arange(len(labels)), labels)
    test_probabilities = sum(fold["test_probabilities"].astype(np.float64) for fold in folds)
    submit.write_submission(test_probabilities, out / "submission.csv", len(test_images))
    pooled = pool(load_pool([saved]))  # scored as `pool` scores the file
    return {"benchmark": "oof", "recipe": args.preset, "overrides": overrides, "folds": args.folds,
            **({"teachers": teachers} if teachers else {}),
            "fold_ensemble_accuracy": [round(ensemble.accuracy(f["members"].mean(axis=0), f["labels"]), 5) for f in folds],
            **{k: pooled[k] for k in (
                "rows", "member_holdout_accuracy", "ensemble", "wrong_by_every_member", "ensemble_errors_share_right")},
            "seconds": round(sum(float(f["train_seconds"]) for f in folds), 1),
            "images_per_second_each_fold": [round(float(f["images_per_second"]), 1) for f in folds],
            "device_each_fold": [str(f["device"]) for f in folds], "precision": str(folds[-1]["precision"]),
            # of this process only: folds saved by earlier runs count in their own
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "members": config.members, "epochs": config.epochs, "model": config.model, "out": str(out)}
