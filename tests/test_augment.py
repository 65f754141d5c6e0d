import keras
import numpy as np

from digit_recognizer import augment
from digit_recognizer.config import Config


def digit():
    image = np.zeros((4, 28, 28, 1), np.float32)
    image[:, 6:22, 12:16] = 1.0  # a bar, like a 1
    return image


def test_inactive_at_inference_and_shape_preserving_in_training():
    layer = augment.augmentation(Config())
    images = digit()
    assert np.array_equal(np.asarray(layer(images, training=False)), images)
    moved = np.asarray(layer(images, training=True))
    assert moved.shape == images.shape
    assert not np.allclose(moved, images)
    assert 0.0 <= moved.min() and moved.max() <= 1.0 + 1e-6


def test_zero_strength_changes_nothing():
    layer = augment.augmentation(Config(rotation=0.0, zoom=0.0, shift=0.0))
    assert np.allclose(np.asarray(layer(digit(), training=True)), digit(), atol=1e-6)


def test_elastic_bends_strokes_and_keeps_ink():
    layer = augment.RandomElastic(34.0, seed=1)
    images = digit()
    assert np.array_equal(np.asarray(layer(images, training=False)), images)
    bent = np.asarray(layer(images, training=True))
    assert bent.shape == images.shape and bent.dtype == np.float32
    assert 0.0 <= bent.min() and bent.max() <= 1.0 + 1e-6
    assert np.abs(bent - images).max() > 0.5  # some stroke pixels moved by about a pixel or more
    assert abs(bent.sum() / images.sum() - 1) < 0.2  # a bend, not an erasure
    assert not np.allclose(bent[0], bent[1])  # each image draws its own field
    # a vanishing field samples every pixel at its own place
    assert np.allclose(np.asarray(augment.RandomElastic(1e-6)(images, training=True)), images, atol=1e-4)


def resampling_layers():
    return [augment.RandomElastic(8.0, seed=1), augment.RandomAffine(10.0, 0.1, 0.1, seed=1), augment.Deskew(),
            augment.InkWidth(4.0)]


def test_resampling_layers_stay_float32_under_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        for layer in resampling_layers():
            out = layer(digit(), training=True)
            assert layer.compute_dtype == "float32" and keras.backend.standardize_dtype(out.dtype) == "float32", layer
        assert augment.Resampling(dtype="bfloat16").compute_dtype == "bfloat16"  # still overridable
    finally:
        keras.config.set_dtype_policy("float32")


def test_resampling_layers_that_claim_xla_compile_under_it():
    """Keras turns jit on by itself on one GPU when every layer claims it can; a false claim fails the first step."""
    import tensorflow as tf
    for layer in resampling_layers():
        step = tf.function(lambda images: layer(images, training=True), jit_compile=True)
        try:
            compiled = step(digit()).shape == digit().shape
        except tf.errors.InvalidArgumentError as error:
            assert "ImageProjectiveTransform" in str(error)  # the op the marking is for, not some other failure
            compiled = False
        assert compiled == layer.supports_jit, layer


def test_elastic_alone_counts_as_augmentation():
    assert augment.placement(Config(rotation=0.0, zoom=0.0, shift=0.0, elastic=34.0)) == "model"
    stack = augment.augmentation(Config(elastic=34.0))
    assert isinstance(stack.layers[0], augment.RandomElastic)


def test_cutout_blanks_one_square_per_training_digit():
    images = np.ones((64, 28, 28, 1), np.float32)
    layer = augment.RandomCutout(8, seed=1)
    assert np.array_equal(np.asarray(layer(images, training=False)), images)
    cut = np.asarray(layer(images, training=True))[..., 0]
    assert cut.shape == (64, 28, 28) and set(np.unique(cut)) == {0.0, 1.0}
    for blank in cut == 0:
        rows, columns = np.flatnonzero(blank.any(axis=1)), np.flatnonzero(blank.any(axis=0))
        assert blank.sum() == len(rows) * len(columns)  # one rectangle: the square, clipped by the frame
        assert 4 <= len(rows) <= 8 and 4 <= len(columns) <= 8  # its centre is inside, so half of it at least
    areas = (cut == 0).sum(axis=(1, 2))
    assert areas.max() == 64 and areas.min() < 64  # whole squares inside, clipped ones at the edges
    assert len({tuple(np.argwhere(blank)[0]) for blank in cut == 0}) > 32  # each digit draws its own place
    assert augment.placement(Config(rotation=0.0, zoom=0.0, shift=0.0, cutout=8)) == "model"
    assert isinstance(augment.augmentation(Config(cutout=8)).layers[-1], augment.RandomCutout)


def test_where_augmentation_runs():
    assert augment.placement(Config()) == "model"
    assert augment.placement(Config(rotation=0.0, zoom=0.0, shift=0.0, augment_in="map")) == "none"
    if keras.backend.backend() == "tensorflow":
        assert augment.placement(Config(augment_in="map")) == "map"


def test_tta_shifts_are_one_pixel_moves():
    assert len(augment.SHIFTS) == 8 and len(set(augment.SHIFTS)) == 8
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in augment.SHIFTS)


def row_centres(image):
    """The ink's mean column in each row that has ink."""
    ink = image[..., 0]
    inked = ink.sum(axis=1) > 1e-3
    return (ink[inked] * np.arange(28)).sum(axis=1) / ink[inked].sum(axis=1)


def test_deskew_stands_a_slanted_stroke_upright():
    images = np.zeros((1, 28, 28, 1), np.float32)
    for row in range(6, 23):  # a stroke leaning right by half a column per row, like a slanted 1
        column = round(14 + 0.5 * (row - 14))
        images[0, row, column - 1:column + 2] = 1.0
    upright = np.asarray(augment.Deskew()(images))
    assert row_centres(images[0]).std() > 2.0
    assert row_centres(upright[0]).std() < 0.5
    assert abs(upright.sum() / images.sum() - 1) < 0.02  # a shear moves ink, it does not add or remove it


def test_deskew_leaves_upright_and_blank_digits_alone():
    images = np.concatenate([digit()[:1], np.zeros((1, 28, 28, 1), np.float32)])
    out = np.asarray(augment.Deskew()(images))
    assert np.allclose(out[0], images[0], atol=1e-5)
    assert np.all(out[1] == 0.0)  # no slant from no ink: no NaN from the empty moments


def centre_of_mass(images):
    """(row, column) of each image's ink."""
    ink = images[..., 0]
    mass = ink.sum(axis=(1, 2))
    return np.stack([(ink.sum(axis=2) * np.arange(28)).sum(axis=1) / mass,
                     (ink.sum(axis=1) * np.arange(28)).sum(axis=1) / mass], axis=1)


def column_spread(image):
    """The ink's column standard deviation, pixels."""
    ink = image[..., 0].sum(axis=0)
    centre = (ink * np.arange(28)).sum() / ink.sum()
    return np.sqrt((ink * (np.arange(28) - centre) ** 2).sum() / ink.sum())


def test_ink_width_stretches_narrow_digits_and_squeezes_wide_ones_about_their_centre():
    images = np.zeros((3, 28, 28, 1), np.float32)
    images[0, 6:22, 9:15] = 1.0  # narrow, left of centre: spread 1.71
    images[1, 6:22, 5:23] = 1.0  # wide: spread 5.19
    images[2, 6:22, 13:15] = 1.0  # a thin bar: spread 0.5, stretched by the most allowed, 2x
    out = np.asarray(augment.InkWidth(3.0)(images))
    spreads = [column_spread(image) for image in out]
    # bilinear sampling blurs a stretched edge and drops a little ink squeezed between samples: within 0.2 px
    assert abs(spreads[0] - 3.0) < 0.2 and abs(spreads[1] - 3.0) < 0.2
    assert 1.0 <= spreads[2] < 1.5  # 2x a bar of 0.5 (its edges blurred), far short of 3
    assert np.allclose(centre_of_mass(out), centre_of_mass(images), atol=0.05)
    assert np.array_equal(out[:, :6], np.zeros_like(out[:, :6]))  # rows move not at all
    assert np.all(np.asarray(augment.InkWidth(3.0)(np.zeros((1, 28, 28, 1), np.float32))) == 0.0)


def test_affine_turns_and_zooms_about_the_centre_and_shifts_up_to_its_limit():
    images = np.repeat(digit(), 8, axis=0)  # 32 centred bars
    turned = np.asarray(augment.RandomAffine(10.0, 0.1, 0.0, seed=1)(images, training=True))
    assert np.abs(centre_of_mass(turned) - 13.5).max() < 0.1
    assert not np.allclose(turned[0], turned[1])  # each image draws its own transform
    moved = np.asarray(augment.RandomAffine(0.0, 0.0, 0.1, seed=1)(images, training=True))
    offsets = centre_of_mass(moved) - 13.5
    assert np.abs(offsets).max() <= 2.8 + 0.05 and np.abs(offsets).max() > 1.0
    assert abs(moved.sum() / images.sum() - 1) < 0.01  # a move keeps the ink of a digit inside the frame
    assert np.array_equal(np.asarray(augment.RandomAffine(10.0, 0.1, 0.1)(images, training=False)), images)


def test_one_resampling_keeps_strokes_sharper_than_three_layers():
    images = np.zeros((32, 28, 28, 1), np.float32)
    images[:, 6:22, 13:15] = 1.0  # a thin stroke: blurring shows most there (seeds 1-6: 1.13-1.22x)

    def sharpness(affine):  # the sum of squared pixels: blurring spreads ink thin and lowers it
        layer = augment.augmentation(Config(affine=affine), seed=1)
        return float((np.asarray(layer(images, training=True)) ** 2).sum())
    assert len(augment.augmentation(Config(affine="once")).layers) == 1
    assert sharpness("once") > 1.08 * sharpness("layers")
