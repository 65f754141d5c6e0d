"""The tutorial's augmentation (rotation 10 degrees, zoom 0.1, shift 0.1) as a Keras layer inside the model.

Keras 3 has no ImageDataGenerator. Its rotation, zoom and shift come back as one affine transform sampled
once (`RandomAffine`, the default) or as Keras's three preprocessing layers (`--affine layers`). Either is active
only when called with training=True, so it sits inside the model and prediction sees the digits as they are.
"""

import keras
import numpy as np
from keras import layers, ops


def sample_affine(images, coefficients):
    """Output pixel (x, y) of each image, x being the column, reads its input at (a0 x + a1 y + a2, b0 x + b1 y + b2),
    bilinearly, blank outside the frame; `coefficients` (a0, a1, a2, b0, b1, b2) hold one value per image each."""
    a0, a1, a2, b0, b1, b2 = coefficients
    zeros = ops.zeros_like(a2)  # the last row of a projective transform: affine, so no perspective
    transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="constant")


class RandomAffine(layers.Layer):
    """Rotation, zoom (each axis its own factor) and shift as one affine transform, sampled bilinearly once: what
    the tutorial's ImageDataGenerator did. Keras's RandomRotation, RandomZoom and RandomTranslation each resample,
    and three bilinear passes blur the training digits, where the test digits the model must read stay sharp
    (the research log measures how much)."""

    def __init__(self, rotation, zoom, shift, seed=None, **kwargs):
        # float32 whatever the model's precision: in bfloat16 a coordinate near 20 rounds to 1/8 pixel
        super().__init__(**{"dtype": "float32", **kwargs})
        # TensorFlow's XLA has no kernel for affine_transform's ImageProjectiveTransformV3, and Keras turns jit on
        # by itself on one GPU, so the first step would fail there
        self.supports_jit = keras.backend.backend() != "tensorflow"
        self.rotation, self.zoom, self.shift = np.deg2rad(rotation), zoom, shift
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.rotation == self.zoom == self.shift == 0:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def uniform(limit):  # one draw per image in [-limit, limit]
            return keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)
        angle, zoom_x, zoom_y = uniform(self.rotation), 1 + uniform(self.zoom), 1 + uniform(self.zoom)
        shift_x, shift_y = uniform(self.shift) * width, uniform(self.shift) * height
        cos, sin = ops.cos(angle), ops.sin(angle)
        # output pixel (x, y) reads input centre + rotation @ zoom @ ((x, y) - centre) + shift, x being the column
        a0, a1, b0, b1 = cos * zoom_x, -sin * zoom_y, sin * zoom_x, cos * zoom_y
        centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
        a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
        b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
        return sample_affine(images, (a0, a1, a2, b0, b1, b2))


def augmentation(config, seed=None) -> keras.Sequential:
    """Rotation, zoom and shift, seeded so a member's augmentation is reproducible. `config.affine` picks one
    resampling (RandomAffine) or Keras's three layers."""
    seed = config.seed if seed is None else seed
    if config.affine == "once":
        moves = [RandomAffine(config.rotation, config.zoom, config.shift, seed=seed)]
    else:
        moves = [
            # RandomRotation takes a fraction of a full turn
            layers.RandomRotation(config.rotation / 360.0, fill_mode="constant", seed=seed),
            layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(config.shift, config.shift, fill_mode="constant", seed=seed + 2),
        ]
    stack = keras.Sequential(moves, name="augmentation")
    if keras.backend.backend() == "jax":
        # Keras marks these layers unfit for jit, and one such layer turns jit off for the whole model: each
        # step then runs op by op (the research log has the H100's figure). Their JAX ops (map_coordinates under
        # vmap, seeds carried as state) compile fine, so the model keeps jit.
        for layer in stack.layers:
            layer.supports_jit = True
    return stack


def augments(config) -> bool:
    """Whether the config asks for any augmentation at all."""
    return not config.rotation == config.zoom == config.shift == 0


# Test-time augmentation moves: one pixel up, down, left, right, then the diagonals. np.roll wraps around, which
# is harmless here: MNIST digits sit in a 20x20 box centred in 28x28, so the wrapped border is blank.
SHIFTS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
