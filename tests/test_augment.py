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


def test_where_augmentation_runs():
    assert augment.where(Config()) == "model"
    assert augment.where(Config(rotation=0.0, zoom=0.0, shift=0.0, augment_in="map")) == "none"
    if keras.backend.backend() == "tensorflow":
        assert augment.where(Config(augment_in="map")) == "map"


def test_tta_shifts_are_one_pixel_moves():
    assert len(augment.SHIFTS) == 8 and len(set(augment.SHIFTS)) == 8
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in augment.SHIFTS)
