"""The tutorial's augmentation (rotation 10 degrees, zoom 0.1, shift 0.1) as Keras preprocessing layers.

ImageDataGenerator is gone from Keras 3; these layers replace it. They are active only when called with
training=True, so the same stack can sit inside the model (the default) or in a parallel tf.data map (TensorFlow only).
`where()` makes that choice.
"""

import keras
from keras import layers


def augmentation(config, seed=None) -> keras.Sequential:
    """Rotation, zoom and shift as one layer; seeded so a member's augmentation is reproducible."""
    seed = config.seed if seed is None else seed
    stack = keras.Sequential(
        [
            # RandomRotation takes a fraction of a full turn
            layers.RandomRotation(config.rotation / 360.0, fill_mode="constant", seed=seed),
            layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(config.shift, config.shift, fill_mode="constant", seed=seed + 2),
        ],
        name="augmentation",
    )
    if keras.backend.backend() == "jax":
        # Keras marks these layers unfit for jit, and one such layer turns jit off for the whole model:
        # on an H100 each step then ran op by op, 0.6 s per batch of 64. Their JAX ops (map_coordinates under
        # vmap, seeds carried as state) compile fine, so the model keeps jit.
        for layer in stack.layers:
            layer.supports_jit = True
    return stack


def where(config) -> str:
    """none, model or map. `auto` is model everywhere: on an accelerator it runs on the device, and on this
    2-core CPU it measured as fast as the map over 8,600 rows and steadier over 37,800, where the map's AUTOTUNE
    threads slowed a later epoch by 60% (README, "Where augmentation runs")."""
    if config.rotation == config.zoom == config.shift == 0:
        return "none"
    if config.augment_in == "map" and keras.backend.backend() != "tensorflow":
        raise ValueError(f"config: augment_in=map needs the tensorflow backend, not {keras.backend.backend()}")
    return "map" if config.augment_in == "map" else "model"


# Test-time augmentation moves: one pixel up, down, left, right, then the diagonals. np.roll wraps around, which
# is harmless here: MNIST digits sit in a 20x20 box centred in 28x28, so the wrapped border is blank.
SHIFTS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
