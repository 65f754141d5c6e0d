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


# the hostile corpus of settings: each one a value a user could type, each refused in one line naming the flag
@pytest.mark.parametrize("override, message", [
    ({"model": "bn+resnet"}, r"--model bn\+resnet: not one of tutorial, bn, deep"),
    ({"members": 0}, r"--members 0: must be in \[1, 500\]"),
    ({"members": 100000}, r"--members 100000: must be in \[1, 500\]: each member costs minutes"),
    ({"holdout": 0.7}, r"--holdout 0.7: must be in \[0, 0.5\)"),
    ({"schedule": "plateau"}, "needs --validation > 0"),
    ({"tta": 3}, "--tta 3: not one of 0, 4, 8"),
    ({"dropout_scale": 2.0}, r"--dropout-scale 2.0: must be in \[0, 2\)"),
    ({"affine": "twice"}, "--affine twice: not one of layers, once"),
    ({"bn_momentum": 1.0}, r"--bn-momentum 1.0: must be in \[0, 1\)"),
    ({"learning_rate": -1.0}, "--learning-rate -1.0: must be positive"),
    ({"learning_rate": float("nan")}, "--learning-rate nan: must be positive"),
    ({"decay": 0.0}, r"--decay 0.0: must be in \(0, 1\]"),
    ({"limit": -5}, "--limit -5: must be 0"),
    ({"min_steps": -1}, "--min-steps -1: must be 0"),
    ({"rotation": 400.0}, r"--rotation 400.0: must be in \[0, 180\]"),
    ({"verbose": 3}, "--verbose 3: not one of 0, 1, 2"),
    ({"seed": -1}, r"--seed -1: member k trains with seed \+ 1000k, so with 6 members the seed must be in "
                   r"\[0, 4294962295\]"),
    ({"seed": 4294967295, "members": 2}, r"--seed 4294967295: .* with 2 members the seed must be in \[0, 4294966295\]"),
    ({"holdout_seed": -1}, r"--holdout-seed -1: must be in \[0, 4294967295\]"),
    ({"members_per_step": 0}, r"--members-per-step 0: must be in \[1, 64\]"),
    ({"members_per_step": 4, "validation": 0.1}, "--members-per-step 4: members side by side train on the same "
                                                 "rows.*use --validation 0"),
    ({"workers": -1}, "--workers -1: must be 0 \\(one per GPU\\)"),
    ({"budget_minutes": -5.0}, "--budget-minutes -5.0: must be 0 \\(none\\) or minutes"),
])
def test_bad_values_name_flag_and_fix(override, message):
    with pytest.raises(ValueError, match=message):
        configuration.check(dataclasses.replace(Config(), **override))


def test_the_last_member_seed_that_fits_is_accepted():
    assert configuration.check(Config(seed=2**32 - 1, members=1)).seed == 2**32 - 1
    assert configuration.check(Config(seed=2**32 - 1001, members=2)).members == 2


def test_booleans_must_say_true_or_false():
    assert parse("--deterministic", "yes").deterministic is True
    assert parse("--deterministic", "off").deterministic is False
    with pytest.raises(ValueError, match="argument --deterministic: 'maybe' is not true or false"):
        parse("--deterministic", "maybe")


def test_no_abbreviations_and_field_spellings_accepted():
    with pytest.raises(ValueError, match=r"unknown flag --epoch \(did you mean --epochs\?\)"):
        parse("--epoch", "3")
    assert parse("--learning_rate", "0.01").learning_rate == 0.01
    assert parse("--learning_rate=0.02").learning_rate == 0.02


def test_unknown_flags_warn_except_ipykernels_own():
    parser = configuration.argparse.ArgumentParser(allow_abbrev=False)
    known = configuration.add_arguments(parser)
    _, unknown = parser.parse_known_args(["--epochz", "3", "--lr", "0.01", "-f", "/tmp/kernel-1.json",
                                          "--HistoryManager.hist_file=:memory:", "--ip=127.0.0.1"])
    assert configuration.unknown_flag_warnings(unknown, known) == [
        "warning: ignored unknown flag --epochz (did you mean --epochs?)", "warning: ignored unknown flag --lr"]


def test_old_family_name_still_works_with_a_note():
    notes = []
    args = configuration.argparse.Namespace(preset=None, **{f.name: None for f in dataclasses.fields(Config)})
    args.model = "seed+bn"
    assert configuration.from_args(args, log=notes.append).model == "tutorial+bn"
    assert notes == ["note: --model seed is now called tutorial"]


def test_presets_are_valid_and_frozen():
    assert PRESETS["full"] == Config()  # every way of running on Kaggle runs the recipe
    for preset in PRESETS.values():
        assert configuration.check(preset) is preset
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["fast"].epochs = 3


def test_members_alternate_families_in_order():
    mixed = Config(model="bn+deep")
    assert [configuration.member_family(mixed, m) for m in range(5)] == ["bn", "deep", "bn", "deep", "bn"]
    assert configuration.member_family(Config(model="tutorial"), 3) == "tutorial"
    assert configuration.member_specs(mixed, [1, 2]) == [("deep", 1042), ("bn", 2042)]


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
