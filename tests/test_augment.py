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
    # still the digit, moved a little: most of its ink kept, and most of it where the bar was
    assert abs(moved.sum() / images.sum() - 1) < 0.25
    assert (moved * images).sum() / images.sum() > 0.3


def test_zero_strength_changes_nothing():
    layer = augment.augmentation(Config(rotation=0.0, zoom=0.0, shift=0.0))
    assert np.allclose(np.asarray(layer(digit(), training=True)), digit(), atol=1e-6)


def test_the_affine_layer_stays_float32_under_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = augment.RandomAffine(10.0, 0.1, 0.1, seed=1)
        out = layer(digit(), training=True)
        assert layer.compute_dtype == "float32" and keras.backend.standardize_dtype(out.dtype) == "float32"
        assert augment.RandomAffine(10.0, 0.1, 0.1, dtype="bfloat16").compute_dtype == "bfloat16"  # overridable
    finally:
        keras.config.set_dtype_policy("float32")


def test_augmentation_layers_that_claim_xla_compile_under_it():
    """Keras turns jit on by itself on one GPU when every layer claims it can; a false claim fails the first step."""
    import tensorflow as tf
    layers = augment.augmentation(Config(affine="once")).layers + augment.augmentation(Config(affine="layers")).layers
    for layer in layers:
        step = tf.function(lambda images: layer(images, training=True), jit_compile=True)
        try:
            compiled = step(digit()).shape == digit().shape
        except tf.errors.InvalidArgumentError as error:
            assert "ImageProjectiveTransform" in str(error)  # the op the marking is for, not some other failure
            compiled = False
        assert compiled == layer.supports_jit, layer


def test_no_strength_means_no_augmentation():
    assert augment.augments(Config()) and augment.augments(Config(rotation=0.0, zoom=0.0))
    assert not augment.augments(Config(rotation=0.0, zoom=0.0, shift=0.0))


def test_tta_shifts_are_one_pixel_moves():
    assert len(augment.SHIFTS) == 8 and len(set(augment.SHIFTS)) == 8
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in augment.SHIFTS)


def centre_of_mass(images):
    """(row, column) of each image's ink."""
    ink = images[..., 0]
    mass = ink.sum(axis=(1, 2))
    return np.stack([(ink.sum(axis=2) * np.arange(28)).sum(axis=1) / mass,
                     (ink.sum(axis=1) * np.arange(28)).sum(axis=1) / mass], axis=1)


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
