"""Every hyperparameter in one frozen dataclass; presets are named instances.

`Config()` is the recipe we ship (`PRESETS["full"]` is the same instance), what `push.py run` pushes unless told
otherwise; `fast` is the smoke run; `gpu` and `cpu` are the recipes for a long Kaggle GPU session and a CPU one.
The comment after each field is its `--help` text: `add_arguments` reads the comments from this file, so a field
and its flag cannot drift apart. Why each default is what it is: the research log, experiments/README.md.
"""

import argparse
import dataclasses
import inspect
import re


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "bn+deep"  # the CNN family (digit_recognizer/model.py), or several joined by + to alternate
    dropout_scale: float = 0.5  # multiplies every dropout rate of the family (1 = as published)
    bn_momentum: float = 0.99  # share of BatchNorm's moving statistics kept each step (Keras's); lower settles sooner
    members: int = 6  # ensemble size; members differ by seed, split and initialisation
    members_per_step: int = 1  # members trained side by side in one model: one step, one overhead (a GPU's gain)
    workers: int = 0  # processes that train members side by side: 0 = one per GPU (one process without GPUs)
    budget_minutes: float = 0.0  # stop adding members when the next would end past this many minutes (0 = none)
    epochs: int = 15  # passes over each member's training rows
    min_steps: int = 0  # at least this many steps per member: more epochs when the rows are few (the demo sample)
    batch_size: int = 64  # images per gradient step
    optimizer: str = "adam"  # adam or rmsprop (the tutorial's choice)
    learning_rate: float = 3e-3  # initial learning rate
    schedule: str = "exponential"  # exponential (lr * decay**epoch), cosine or onecycle (warm up, end at 0), plateau
    decay: float = 0.8  # per-epoch factor of the exponential schedule
    plateau_patience: int = 3  # epochs without val_accuracy gain before plateau halves the learning rate
    holdout: float = 0.1  # fraction of train kept out of all training, to measure members and ensemble; 0 = none
    holdout_seed: int = 42  # seeds the hold-out split alone, so runs with another --seed score the same rows
    min_accuracy: float = 0.5  # a run below this accuracy (hold-out, else training rows) fails and writes no submission
    validation: float = 0.0  # fraction of each member's rows split off (own seed) for callbacks; 0 = none
    rotation: float = 10.0  # augmentation: largest rotation, degrees
    zoom: float = 0.1  # augmentation: largest zoom, fraction
    shift: float = 0.1  # augmentation: largest shift, fraction of the side
    affine: str = "once"  # augmentation: once (one resampling) or layers (Keras's rotation, zoom, shift: three)
    precision: str = "auto"  # auto, float32, mixed_bfloat16 or mixed_float16
    tta: int = 4  # test-time augmentation: extra predictions on copies shifted by one pixel (0, 4 or 8)
    pseudo: float = 0.0  # a second round also trains on test images the first ensemble is this sure of (0 = off)
    label_smoothing: float = 0.0  # share of each target spread over the other classes (0 = plain cross-entropy)
    ema: float = 0.0  # momentum of a moving average of the weights, swapped in after fit (0 = off; less in short fits)
    deterministic: bool = False  # seeds plus op determinism: same submission byte for byte; off lets XLA compile
    limit: int = 0  # use only N training rows, a seeded draw from all of them (0 = all); for smoke runs
    seed: int = 42  # seeds each member's split, initialisation, shuffling and augmentation (member k: seed + 1000k)
    verbose: int = 2  # Keras fit progress: 0 silent, 1 progress bar, 2 one line per epoch


PRESETS = {
    # The recipe: Deotte's BatchNorm CNN alternating with a deeper no-pooling family, six members of 15 epochs at
    # 3e-3 x 0.8 per epoch, half the published dropout, one resampling for rotation/zoom/shift, four TTA shifts.
    "full": Config(),
    # The loop a Kaggler runs again and again: a small CNN, three epochs at batch 128 that warm up over the first
    # quarter and anneal to zero, no augmentation (too short to pay); at least 400 steps, so the demo sample's
    # 3,600 rows get fourteen epochs. Deterministic: the same flags give the same submission byte for byte.
    "fast": Config(model="lenet", members=1, epochs=3, min_steps=400, batch_size=128, learning_rate=0.01,
                   schedule="onecycle", dropout_scale=1.0, rotation=0.0, zoom=0.0, shift=0.0, tta=0,
                   deterministic=True),
    # A Kaggle GPU session (two T4s): An et al.'s no-pooling M5 trained as they did (150 epochs at 1e-3 x
    # 0.98^epoch, batch 120, rotation 20 and shift 0.2, weights averaged by EMA 0.999), two members to a step on
    # each GPU, as many of sixteen as end within 110 minutes.
    "gpu": Config(model="m5", members=16, members_per_step=2, budget_minutes=110.0, epochs=150, batch_size=120,
                  learning_rate=1e-3, decay=0.98, rotation=20.0, zoom=0.0, shift=0.2, ema=0.999),
    # A Kaggle CPU session (four cores, no GPU quota): the recipe, as many of 24 members as end within nine hours,
    # well inside the session's twelve. Several such sessions blend into one submission (push.py --sessions).
    "cpu": Config(members=24, budget_minutes=540.0),
}
RENAMED = {"seed": "tutorial"}  # old family names still accepted, with a note
SEED_STRIDE = 1000  # member k trains with seed + SEED_STRIDE * k: members' seeds never meet within a run


def member_family(config: Config, member: int) -> str:
    """The family of ensemble member `member` (from 0): `bn+deep` alternates bn, deep, bn, ..."""
    families = config.model.split("+")
    return families[member % len(families)]


def member_specs(config: Config, members) -> list:
    """(family, seed) of each member number in `members`: member k trains with seed + 1000k."""
    return [(member_family(config, m), config.seed + SEED_STRIDE * m) for m in members]


def flag(field: str) -> str:
    """The command-line flag of a Config field: learning_rate -> --learning-rate."""
    return "--" + field.replace("_", "-")


def _field_help():
    """Maps each field name to the comment on its line in the class body."""
    try:
        source = inspect.getsource(Config)
    except (OSError, TypeError):  # no source at hand (a frozen build): flags still work, without help text
        return {}
    return dict(re.findall(r"^\s+(\w+): \w+ = .*?  # (.*)$", source, flags=re.MULTILINE))


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def add_preset_arguments(parser: argparse.ArgumentParser) -> list:
    """Adds `--preset NAME` and its shorthand `--fast` (None: the recipe, "full"); returns their flags."""
    added = [parser.add_argument("--preset", choices=sorted(PRESETS), help="named set of hyperparameters (default: "
                                 "full, the recipe; the others are described in digit_recognizer/config.py)"),
             parser.add_argument("--fast", action="store_const", const="fast", dest="preset",
                                 help="same as --preset fast")]
    return [option for action in added for option in action.option_strings]


def add_arguments(parser: argparse.ArgumentParser) -> list:
    """Adds `--preset` and one `--field-name` flag per Config field, defaulting to None (= keep the preset's);
    returns the flags it added."""
    known = add_preset_arguments(parser)
    help_text = _field_help()
    for field in dataclasses.fields(Config):
        kind = field.type if callable(field.type) else type(field.default)
        names = f"; one of {', '.join(FAMILIES)}" if field.name == "model" else ""
        parser.add_argument(flag(field.name), type=boolean if kind is bool else kind, default=None,
                            metavar=field.name.upper(),
                            help=f"{help_text.get(field.name, '')}{names} (default: {field.default})")
        known.append(flag(field.name))
    return known


def from_args(args: argparse.Namespace, log=print) -> Config:
    """The preset named in `args` (or the recipe), with every flag that was given laid over it, checked."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    if "model" in overrides:
        families = overrides["model"].split("+")
        for old in set(families) & set(RENAMED):
            log(f"note: --model {old} is now called {RENAMED[old]}")
        overrides["model"] = "+".join(RENAMED.get(family, family) for family in families)
    return check(dataclasses.replace(PRESETS[args.preset or "full"], **overrides))


def field_spelling(argv) -> list:
    """`--learning_rate 0.01` (a field as `--set` spells it) read as `--learning-rate 0.01`."""
    fields = {field.name for field in dataclasses.fields(Config)}
    spelled = []
    for item in argv:
        name, equals, value = item.partition("=")
        if item.startswith("--") and name[2:] in fields:
            item = flag(name[2:]) + equals + value
        spelled.append(item)
    return spelled


# what ipykernel (a Kaggle notebook) passes to the script it runs: `-f FILE` and `--Class.trait=value` options
IPYKERNEL = re.compile(r"^(-f|--f=.*|--[A-Za-z]+\.\w+(=.*)?|--(ip|stdin|control|hb|shell|iopub|transport)=.*)$")


def unknown_flag_warnings(unknown, known: list) -> list:
    """One line for each flag nobody knows (a value after it is not a flag), none for ipykernel's own; `known`:
    the flags the parser has, for a guess at the one meant."""
    import difflib
    warnings, after_f = [], False
    for item in unknown:
        if after_f or IPYKERNEL.match(item):
            after_f = item == "-f"
            continue
        if item.startswith("-"):
            guess = difflib.get_close_matches(item.split("=")[0], known, n=1, cutoff=0.7)
            warnings.append(f"warning: ignored unknown flag {item}" + (f" (did you mean {guess[0]}?)" if guess else ""))
    return warnings


def settings_flags(settings) -> list:
    """`--set FIELD=VALUE` items (benchmark.py's, push.py's) as kernel.py flags: `decay=0.8` -> --decay 0.8."""
    fields = {field.name for field in dataclasses.fields(Config)}
    flags = []
    for item in settings:
        name, equals, value = item.partition("=")
        name = name.replace("-", "_")  # --set learning-rate=... is the field learning_rate
        if not equals or name not in fields:
            raise ValueError(f"--set {item}: expected FIELD=VALUE with FIELD a Config field (e.g. holdout=0); "
                             f"the fields are {', '.join(sorted(fields))}")
        flags += [flag(name), value]
    return flags


def parse_flags(flags) -> Config:
    """The Config kernel.py builds from these flags, so a script can check them before anything runs: a value of
    the wrong type or out of range is a ValueError that names its flag."""
    parser = argparse.ArgumentParser(exit_on_error=False, allow_abbrev=False)
    known = add_arguments(parser)
    try:
        args, unknown = parser.parse_known_args(field_spelling(flags))
    except argparse.ArgumentError as error:
        raise ValueError(f"config: {error}") from None
    warnings = unknown_flag_warnings(unknown, known)
    if warnings:  # a script's flags have no ipykernel to make room for: the first unknown one is an error
        raise ValueError(f"config: {warnings[0].removeprefix('warning: ignored ')}")
    return from_args(args, log=lambda line: None)


FAMILIES = ("tutorial", "bn", "deep", "m5", "lenet")  # the CNN families: model.py builds `<name>_body` for each
SEEDS = 2**32  # numpy, TensorFlow and scikit-learn all take seeds below this
CHOICES = {
    "optimizer": ("adam", "rmsprop"),
    "schedule": ("exponential", "cosine", "onecycle", "plateau"),
    "affine": ("layers", "once"),
    "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "tta": (0, 4, 8),
    "verbose": (0, 1, 2),
}
# field: (the test a value must pass, what to tell a user whose value fails it); NaN fails every comparison
RANGES = {
    "members": (lambda v: 1 <= v <= 500, "must be in [1, 500]: each member costs minutes (a 15-epoch one about "
                "10 on a CPU), and --budget-minutes stops adding them where the time ends"),
    "members_per_step": (lambda v: 1 <= v <= 64, "must be in [1, 64], e.g. 4 on a GPU"),
    "workers": (lambda v: v >= 0, "must be 0 (one per GPU) or a number of processes"),
    "budget_minutes": (lambda v: v >= 0, "must be 0 (none) or minutes, e.g. 110 for a two-hour Kaggle session"),
    "epochs": (lambda v: v >= 1, "must be at least 1"),
    "batch_size": (lambda v: v >= 1, "must be at least 1"),
    "plateau_patience": (lambda v: v >= 1, "must be at least 1"),
    "min_steps": (lambda v: v >= 0, "must be 0 (off) or a number of steps"),
    "limit": (lambda v: v >= 0, "must be 0 (all rows) or a number of rows, e.g. 10000"),
    "learning_rate": (lambda v: 0 < v < 10, "must be positive and below 10, e.g. 0.001"),
    "decay": (lambda v: 0 < v <= 1, "must be in (0, 1]: the share of the rate kept each epoch, e.g. 0.8"),
    "holdout": (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
    "min_accuracy": (lambda v: 0 <= v < 1, "must be in [0, 1): 0 writes whatever the run learned"),
    "validation": (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
    "pseudo": (lambda v: v == 0 or 0.5 <= v < 1, "must be 0 (off) or a confidence in [0.5, 1), e.g. 0.999"),
    "rotation": (lambda v: 0 <= v <= 180, "must be in [0, 180] degrees"),
    "zoom": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "shift": (lambda v: 0 <= v < 1, "must be in [0, 1): a fraction of the side"),
    "ema": (lambda v: 0 <= v < 1, "must be 0 (off) or a momentum in (0, 1), e.g. 0.999"),
    "bn_momentum": (lambda v: 0 <= v < 1, "must be in [0, 1), e.g. 0.99 (Keras's) or 0.9 for runs of a few "
                    "hundred steps"),
    "dropout_scale": (lambda v: 0 <= v < 2, "must be in [0, 2)"),  # the tutorial CNN's 0.5 must stay below 1
    "holdout_seed": (lambda v: 0 <= v < SEEDS, f"must be in [0, {SEEDS - 1}]"),
}


def check(config: Config) -> Config:
    """Raises ValueError naming the flag, its value and what it accepts."""
    def fault(name, why):
        return ValueError(f"config: {flag(name)} {getattr(config, name)}: {why}")

    if not all(family in FAMILIES for family in config.model.split("+")):
        raise fault("model", f"not one of {', '.join(FAMILIES)} (or several joined by +)")
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise fault(name, f"not one of {', '.join(map(str, allowed))}")
    for name, (test, why) in RANGES.items():
        if not test(getattr(config, name)):
            raise fault(name, why)
    last_seed = config.seed + SEED_STRIDE * (config.members - 1)
    if not (0 <= config.seed and last_seed < SEEDS):
        raise fault("seed", f"member k trains with seed + 1000k, so with {config.members} members the seed must "
                            f"be in [0, {SEEDS - 1 - SEED_STRIDE * (config.members - 1)}]")
    if config.members_per_step > 1 and config.validation:
        raise fault("members_per_step", "members side by side train on the same rows, so each cannot keep its own "
                                        "--validation rows: use --validation 0 (the hold-out still scores them)")
    if config.schedule == "plateau" and config.validation == 0:
        raise ValueError("config: --schedule plateau watches val_accuracy, so it needs --validation > 0 (e.g. 0.1)")
    return config
