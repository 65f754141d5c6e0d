"""Every hyperparameter in one frozen dataclass; presets are named instances.

The comment after each field is its documentation and its `--help` text: `add_arguments` reads the comments
from this file, so a field and its flag can never drift apart.

Evidence for the defaults (measured on this workplace's 2-core AMD EPYC CPU with AVX512-BF16; each run, its command and
log in benchmarks/README.md):
- `model="bn"`: 15.2 M multiply-adds per image against 32.3 M for the tutorial's `seed` CNN; Deotte's
  ensemble of 15 of them is the best legitimate public kernel (0.99757).
- `deep` beside `bn` in the full preset: out of fold (ten folds, 42,000 rows) one `deep` member made 186 errors
  against 179 and 178 for `bn` members of the same schedule, a `bn` + `deep` pair 164 against 162 for two `bn`
  (p 0.90), and as an eleventh member 138 against 139: no diversity gain, kept because on a GPU it costs about
  what `bn` does (3.5x on the 2-core Xeon in float32) and the recipe calls for a second family.
- `m5` (An et al.'s 5x5 no-pooling CNN, 9x `bn`'s multiply-adds) stays out of the preset: one full-preset
  member 0.99262 hold-out, 0.99357 with the paper's rotation 20 / shift 0.2, each in 4x a `bn` member's time.
- `precision="auto"` picks mixed_bfloat16 on a CPU with bf16 instructions (2x float32 on matmuls here, about
  1.4x on the seed CNN) and mixed_float16 on a GPU (float32 on several under TensorFlow: train.precision);
  the softmax always stays float32.
- `augment_in="auto"` augments inside the model: as fast as a parallel tf.data map here over 8,600 rows, and
  steadier over the full 37,800, where the map's third epoch ran 60% slower (40 s against 25 s).
- `rotation`, `zoom`, `shift`: the tutorial's 10 / 0.1 / 0.1. One full-preset `bn` member on the hold-out:
  0.99524; 15 / 0.15 / 0.15 and 5 / 0.05 / 0.05 both 0.99500 (one image, within the seed-to-seed spread).
- `affine="once"` in the full preset (the field's default stays `layers`, Keras's three resamplings, which blur
  the training digits): out of fold over all ten folds, a `bn` pair sampled once made 162 errors against 172 for
  the same seeds through the three layers, its members 179 and 178 against 189 each (its folds 9-10 in float32, on
  a Xeon without bf16); within chance (p 0.29), the same way for both seeds, and augmentation runs 2.5x faster.
  Figures measured before 2026-12-01 used `layers`.
- `elastic` off: on top of those, elastic 8 / 16 / 34 gave 0.99452 / 0.99286 / 0.97810; 16 alone 0.99500.
  Out of fold (ten folds), an elastic-8 member made 187 errors against 179 for the same seed without (p 0.52),
  and beside the ten `bn` members of benchmarks/README.md it cut 3 errors (136 against 139), within chance.
- `cutout` and `weight_decay` off: out of fold, an 8x8 cutout cost a seed-1042 member 13 images on folds 1-2 (57
  against 44); weight decay 0.05 left members of seeds 1042 and 42 at 76 and 85 errors over folds 1-4 (79 and
  84 without), and the best pool one to three images worse (benchmarks/README.md, "Cutout and weight decay").
- `deskew` off: out of fold over ten folds, a deskewed `bn` pair made 168 errors where plain pairs made 172 and
  168; two plain and two deskewed members 151 and 146, four plain 158; without one fold 142 and 138 vs 142.
- `ink_width` off: out of fold over ten folds, a member reading digits stretched to a column spread of 5 made
  176 errors against 179 for the same seed without; with a plain partner 148 against 162 for a plain pair
  (p 0.044), as a deskewed partner does (147); beside the best pool 137 against 131 (p 0.070). Width 3: 192.
- `optimizer="adam"`: out of fold (all ten folds), SGD with Nesterov momentum at 0.05 made the seed-42 member
  190 errors against 179 with Adam (p 0.34), and the best pool 136 against 131; at 0.15 (folds 1-3) 80 against 70.
- `batch_size=64` in the full preset: out of fold (all ten folds), batch 32 made the seed-42 member 170 errors
  against 179 (p 0.41), the best pool 131 against 131, and trained no faster per fold here.
- `label_smoothing=0` in the full preset: out of fold (folds 1-5 of ten), 0.1 made the seed-42 member 99 errors
  against 107 (p 0.33) and the best pool 82 against 81.
- `width=1`: the seed-42 `bn` member at `width=2` scored the same 0.99524 in 2.4x the time (1,304 s).
- `validation=0`: three `bn` members each on its own 90% scored 0.99452 / 0.99429 / 0.99381 (0.99524 / 0.99548 /
  0.99381 on all rows), ensemble 0.99548, where three others on all rows made 0.99571.
- `epochs=15` at 3e-3 x 0.8 (the full preset): Deotte's published 45 at 1e-3 x 0.95, full dropout, gave the
  seed-42 and seed-1042 members 0.99429 / 0.99381 (ensemble 0.99357) against 0.99524 / 0.99548 (0.99619).
  Out of fold (10 folds, one resampling), 30 epochs at 0.9 made the seed-42 member better, 156 errors against
  179 (p 0.027), but no better than the 15-epoch pair trained in the same time (162, p 0.58); a 30-epoch
  pair against four 15-epoch members in the same time (10 folds): 144 errors against 150 (p 0.54).
"""

import argparse
import dataclasses
import inspect
import re


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "bn"  # family: seed (tutorial's CNN), bn (BatchNorm), deep, m5, lenet (small); bn+deep alternates
    dropout_scale: float = 1.0  # multiplies every dropout rate of the family (1 = as published)
    width: float = 1.0  # multiplies every layer's channels (1 = as published)
    bn_momentum: float = 0.99  # share of BatchNorm's moving statistics kept each step (Keras's); lower settles sooner
    members: int = 1  # ensemble size; members differ by seed, split and initialisation
    epochs: int = 30  # passes over each member's training rows
    min_steps: int = 0  # at least this many steps per member: more epochs when the rows are few (the demo sample)
    batch_size: int = 128  # images per gradient step
    optimizer: str = "adam"  # adam, rmsprop (the tutorial's choice) or sgd (Nesterov momentum 0.9; tried at rate 0.05)
    learning_rate: float = 1e-3  # initial learning rate
    schedule: str = "exponential"  # exponential (lr * decay**epoch), cosine or onecycle (warm up, end at 0), plateau
    decay: float = 0.95  # per-epoch factor of the exponential schedule
    plateau_patience: int = 3  # epochs without val_accuracy gain before plateau halves the learning rate
    holdout: float = 0.1  # fraction of train kept out of all training, to measure members and ensemble; 0 = none
    holdout_seed: int = 42  # seeds the hold-out split alone, so runs with another --seed score the same rows
    validation: float = 0.0  # fraction of each member's rows split off (own seed) for callbacks; 0 = none
    rotation: float = 10.0  # augmentation: largest rotation, degrees
    zoom: float = 0.1  # augmentation: largest zoom, fraction
    shift: float = 0.1  # augmentation: largest shift, fraction of the side
    affine: str = "layers"  # augmentation: layers (Keras's rotation, zoom, shift: three resamplings) or once (one)
    elastic: float = 0.0  # augmentation: elastic distortion, pixels per unit of smoothed noise (Simard: 34; 0 = off)
    cutout: int = 0  # augmentation: side in pixels of a square blanked at a random place in each digit (0 = off)
    deskew: bool = False  # shear each digit upright by its pixel moments, in training and prediction alike
    ink_width: float = 0.0  # stretch each digit sideways to this column spread of ink, pixels (MNIST: 3.8; 0 = off)
    augment_in: str = "auto"  # where augmentation runs: auto (= model), model, or map (a tf.data map; TensorFlow only)
    precision: str = "auto"  # auto, float32, mixed_bfloat16 or mixed_float16
    tta: int = 0  # test-time augmentation: extra predictions on copies shifted by one pixel (0, 4 or 8)
    pseudo: float = 0.0  # a second round also trains on test images the first ensemble is this sure of (0 = off)
    label_smoothing: float = 0.0  # share of each target spread over the other classes (0 = plain cross-entropy)
    weight_decay: float = 0.0  # decoupled weight decay (AdamW's) of conv and dense kernels, times the rate (0 = off)
    ema: float = 0.0  # momentum of a moving average of the weights, swapped in after training (0 = off)
    deterministic: bool = True  # seeds plus op determinism: same submission byte for byte; off lets XLA compile
    limit: int = 0  # use only the first N training rows (0 = all); for smoke runs
    seed: int = 42  # seeds each member's split, initialisation, shuffling and augmentation (member k: seed + 1000k)
    verbose: int = 2  # Keras fit progress: 0 silent, 1 progress bar, 2 one line per epoch


PRESETS = {
    # The loop a Kaggler runs again and again: a small CNN, three epochs at batch 128 that warm up over the first
    # quarter and anneal to zero, no augmentation (too short to pay); at least 300 steps, so the demo sample's
    # 3,600 rows get eleven epochs.
    "fast": Config(model="lenet", epochs=3, min_steps=300, batch_size=128, learning_rate=0.01, schedule="onecycle",
                   rotation=0.0, zoom=0.0, shift=0.0),
    # The Kaggle GPU run (see README "The recipe"): Deotte's BatchNorm CNN alternating with the deeper no-pooling
    # family; XLA on (no op determinism); four one-pixel TTA shifts. Schedule and dropout from single `bn` members
    # on this CPU: 15 epochs at 3e-3 x 0.8^epoch, batch 64: 0.99500, and at half dropout 0.99524; 20 epochs at
    # 1e-3 x 0.95^epoch, batch 128 (the earlier preset): 0.99286-0.99452, each in about a third more time.
    # All six on this CPU (91 min): ensemble 0.99548, below two `bn` members alone (0.99619). 30 epochs (0.9 per
    # epoch) and `deep` at full dropout did no better (README, one or two seeds each). On a lent H100 (JAX) a
    # member trains in about a minute; seven members there 0.99429-0.99548, fifteen pooled 0.99548. Pseudo-labels
    # stay off: they lift bn members by 0-2 images (seeds 42, 1042, 2042), but a pair's ensemble went 0.99619 ->
    # 0.99595 for 2.6x the time. Rotation, zoom and shift in one resampling since 2026-12-01 (docstring above):
    # add --affine layers to reproduce a figure measured before.
    "full": Config(model="bn+deep", members=6, epochs=15, batch_size=64, learning_rate=3e-3, decay=0.8,
                   dropout_scale=0.5, affine="once", holdout=0.1, tta=4, deterministic=False),
}


def member_family(config: Config, member: int) -> str:
    """The family of ensemble member `member` (from 0): `bn+deep` alternates bn, deep, bn, ..."""
    families = config.model.split("+")
    return families[member % len(families)]


def _field_help():
    """Maps each field name to the comment on its line in the class body."""
    try:
        source = inspect.getsource(Config)
    except (OSError, TypeError):  # no source at hand (a frozen build): flags still work, without help text
        return {}
    return dict(re.findall(r"^\s+(\w+): \w+ = .*?  # (.*)$", source, flags=re.MULTILINE))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--preset` and one `--field-name` flag per Config field, defaulting to None (= keep the preset's)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="named set of hyperparameters (default: none)")
    parser.add_argument("--fast", action="store_const", const="fast", dest="preset", help="same as --preset fast")
    help_text = _field_help()
    for field in dataclasses.fields(Config):
        kind = field.type if callable(field.type) else type(field.default)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=(lambda text: text.lower() in ("1", "true", "yes", "on")) if kind is bool else kind,
            default=None,
            metavar=field.name.upper(),
            help=f"{help_text.get(field.name, '')} (default: {field.default})",
        )


def from_args(args: argparse.Namespace) -> Config:
    """The preset named in `args` (or the defaults), with every flag that was given laid over it."""
    base = PRESETS[args.preset] if args.preset else Config()
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    return check(dataclasses.replace(base, **overrides))


def settings_flags(settings) -> list:
    """`--set FIELD=VALUE` items (benchmark.py's, push.py's) as kernel.py flags: `decay=0.8` -> --decay 0.8."""
    fields = {field.name for field in dataclasses.fields(Config)}
    flags = []
    for item in settings:
        name, equals, value = item.partition("=")
        if not equals or name.replace("-", "_") not in fields:
            raise ValueError(f"--set {item}: expected FIELD=VALUE with FIELD a Config field (e.g. holdout=0); "
                             f"the fields are {', '.join(sorted(fields))}")
        flags += ["--" + name.replace("_", "-"), value]
    return flags


def parse_flags(flags) -> Config:
    """The Config kernel.py builds from these flags, so a script can check them before anything runs: a value of
    the wrong type or out of range is a ValueError that names its flag."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    try:
        return from_args(parser.parse_args(flags))
    except argparse.ArgumentError as error:
        raise ValueError(f"config: {error}") from None


FAMILIES = ("seed", "bn", "deep", "m5", "lenet")
CHOICES = {
    "optimizer": ("adam", "rmsprop", "sgd"),
    "schedule": ("exponential", "cosine", "onecycle", "plateau"),
    "augment_in": ("auto", "model", "map"),
    "affine": ("layers", "once"),
    "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "tta": (0, 4, 8),
}


def check(config: Config) -> Config:
    """Raises ValueError naming the field, its value and what it accepts."""
    if not all(family in FAMILIES for family in config.model.split("+")):
        raise ValueError(f"config: model={config.model!r} is not one of {', '.join(FAMILIES)} (or several joined by +)")
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"config: {name}={getattr(config, name)!r} is not one of {', '.join(map(str, allowed))}")
    for name in ("members", "epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"config: {name}={getattr(config, name)} must be at least 1")
    if not (config.pseudo == 0 or 0.5 <= config.pseudo < 1):
        raise ValueError(f"config: pseudo={config.pseudo} must be 0 (off) or a confidence in [0.5, 1), e.g. 0.999")
    for name in ("holdout", "validation", "label_smoothing"):
        if not 0 <= getattr(config, name) < 0.5:
            raise ValueError(f"config: {name}={getattr(config, name)} must be in [0, 0.5)")
    if config.elastic < 0:
        raise ValueError(f"config: elastic={config.elastic} must be 0 (off) or a positive strength, e.g. 34")
    if not 0 <= config.cutout < 28:
        raise ValueError(f"config: cutout={config.cutout} must be 0 (off) or a square's side in pixels below 28, "
                         "e.g. 8")
    if not 0 <= config.ink_width < 14:  # a spread of 14 would put half the ink outside the frame
        raise ValueError(f"config: ink_width={config.ink_width} must be 0 (off) or a spread in pixels below 14, e.g. 5")
    if config.weight_decay < 0:
        raise ValueError(f"config: weight_decay={config.weight_decay} must be 0 (off) or positive, e.g. 0.05")
    if not 0 <= config.bn_momentum < 1:
        raise ValueError(f"config: bn_momentum={config.bn_momentum} must be in [0, 1), e.g. 0.99 (Keras's) or 0.9 "
                         "for runs of a few hundred steps")
    if config.width <= 0:
        raise ValueError(f"config: width={config.width} must be positive (1 = the published channels)")
    if not 0 <= config.dropout_scale < 2:  # the seed CNN's 0.5 dropout must stay below 1
        raise ValueError(f"config: dropout_scale={config.dropout_scale} must be in [0, 2)")
    if config.schedule == "plateau" and config.validation == 0:
        raise ValueError("config: schedule=plateau watches val_accuracy, so it needs --validation > 0 (e.g. 0.1)")
    return config
