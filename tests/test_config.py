import dataclasses

import pytest

from digit_recognizer import config as configuration
from digit_recognizer.config import PRESETS, Config


def parse(*argv):
    return configuration.parse_flags(list(argv))


def test_flags_override_the_preset_field_by_field():
    config = parse("--fast", "--epochs", "7", "--model", "bn+deep", "--deterministic", "false", "--ema", "0.99")
    assert config == dataclasses.replace(PRESETS["fast"], epochs=7, model="bn+deep", deterministic=False, ema=0.99)
    assert parse() == Config()
    assert parse("--preset", "full").members == PRESETS["full"].members


def test_every_field_has_help_from_its_comment():
    help_text = configuration._field_help()
    assert set(help_text) == {f.name for f in dataclasses.fields(Config)}
    assert help_text["epochs"] == "passes over each member's training rows"


@pytest.mark.parametrize("override, message", [
    ({"model": "bn+resnet"}, "model='bn\\+resnet' is not one of seed, bn, deep"),
    ({"members": 0}, "members=0 must be at least 1"),
    ({"holdout": 0.7}, r"holdout=0.7 must be in \[0, 0.5\)"),
    ({"schedule": "plateau"}, "needs --validation > 0"),
    ({"tta": 3}, "tta=3 is not one of 0, 4, 8"),
    ({"dropout_scale": 2.0}, r"dropout_scale=2.0 must be in \[0, 2\)"),
    ({"width": 0.0}, "width=0.0 must be positive"),
    ({"affine": "twice"}, "affine='twice' is not one of layers, once"),
    ({"elastic": -1.0}, "elastic=-1.0 must be 0 \\(off\\) or a positive strength"),
    ({"cutout": 28}, "cutout=28 must be 0 \\(off\\) or a square's side in pixels below 28"),
    ({"weight_decay": -0.1}, "weight_decay=-0.1 must be 0 \\(off\\) or positive"),
    ({"ink_width": -1.0}, "ink_width=-1.0 must be 0 \\(off\\) or a spread in pixels below 14"),
    ({"bn_momentum": 1.0}, r"bn_momentum=1.0 must be in \[0, 1\)"),
])
def test_bad_values_name_field_and_fix(override, message):
    with pytest.raises(ValueError, match=message):
        configuration.check(dataclasses.replace(Config(), **override))


def test_presets_are_valid_and_frozen():
    for preset in PRESETS.values():
        assert configuration.check(preset) is preset
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["fast"].epochs = 3


def test_members_alternate_families_in_order():
    mixed = Config(model="bn+deep")
    assert [configuration.member_family(mixed, m) for m in range(5)] == ["bn", "deep", "bn", "deep", "bn"]
    assert configuration.member_family(Config(model="seed"), 3) == "seed"


def test_settings_become_checked_kernel_flags():
    flags = configuration.settings_flags(["holdout=0", "dropout-scale=1", "holdout_seed=7"])
    assert flags == ["--holdout", "0", "--dropout-scale", "1", "--holdout-seed", "7"]
    config = configuration.parse_flags(["--preset", "full"] + flags)
    assert (config.holdout, config.dropout_scale, config.holdout_seed, config.members) == (0, 1, 7, 6)
    for item in ("holdout", "hold=0"):
        with pytest.raises(ValueError, match=f"--set {item}: expected FIELD=VALUE"):
            configuration.settings_flags([item])
    with pytest.raises(ValueError, match="argument --holdout: invalid float value: 'abc'"):
        configuration.parse_flags(["--holdout", "abc"])
