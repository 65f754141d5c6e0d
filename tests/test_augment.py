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


def test_elastic_alone_counts_as_augmentation():
    assert augment.where(Config(rotation=0.0, zoom=0.0, shift=0.0, elastic=34.0)) == "model"
    stack = augment.augmentation(Config(elastic=34.0))
    assert isinstance(stack.layers[0], augment.RandomElastic)


def test_where_augmentation_runs():
    assert augment.where(Config()) == "model"
    assert augment.where(Config(rotation=0.0, zoom=0.0, shift=0.0, augment_in="map")) == "none"
    if keras.backend.backend() == "tensorflow":
        assert augment.where(Config(augment_in="map")) == "map"


def test_tta_shifts_are_one_pixel_moves():
    assert len(augment.SHIFTS) == 8 and len(set(augment.SHIFTS)) == 8
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in augment.SHIFTS)
