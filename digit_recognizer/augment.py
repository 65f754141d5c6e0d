"""The tutorial's augmentation (rotation 10 degrees, zoom 0.1, shift 0.1) as Keras preprocessing layers, and
optional elastic distortion (Simard, Steinkraus and Platt 2003), which Keras 3.15's RandomElasticTransform does
not give: it draws one noise field for both axes, so every pixel moves along the diagonal, and optional cutout
(DeVries and Taylor 2017), which Keras's RandomErasing does not give plainly (its `scale` is documented as an
aspect ratio and its fill is noise by default). Also the optional
deskewing and width-normalising layers, which are not augmentation (they run in prediction too) but sit in front of
the model the same way.

ImageDataGenerator is gone from Keras 3; these layers replace it. They are active only when called with
training=True, so the same stack can sit inside the model (the default) or in a parallel tf.data map (TensorFlow only).
`placement()` makes that choice.
"""

import keras
import numpy as np
from keras import layers, ops


class Resampling(layers.Layer):
    """A layer that moves pixels to computed coordinates. It runs in float32 unless given another dtype, whatever
    the model's precision: in bfloat16 a coordinate near 20 rounds to 1/8 pixel."""

    # False where the layer samples with ops.image.affine_transform: TensorFlow's XLA has no kernel for its
    # ImageProjectiveTransformV3, and Keras turns jit on by itself on one GPU, so the first step would fail there
    tensorflow_xla = True

    def __init__(self, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.supports_jit = self.tensorflow_xla or keras.backend.backend() != "tensorflow"


class RandomElastic(Resampling):
    """Moves each pixel by a random field: uniform noise in [-1, 1] per pixel and axis, smoothed by a Gaussian
    of width `sigma` pixels, times `alpha`. Samples bilinearly, blank outside the image. Keras ops only."""

    def __init__(self, alpha, sigma=4.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.sigma = alpha, sigma
        self.seed_generator = keras.random.SeedGenerator(seed)
        radius = int(np.ceil(2 * sigma))
        taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
        # the Gaussian is separable: this column pass, then its transpose as a row pass; one channel per axis
        self.column = np.tile((taps / taps.sum()).astype("float32").reshape(-1, 1, 1, 1), (1, 1, 2, 1))

    def call(self, images, training=None):
        if not training or self.alpha == 0:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        noise = keras.random.uniform((batch, height, width, 2), -1.0, 1.0, seed=self.seed_generator)
        field = ops.depthwise_conv(noise, self.column, padding="same")
        field = ops.depthwise_conv(field, self.column.transpose(1, 0, 2, 3), padding="same") * self.alpha
        rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        y, x = rows.astype("float32") + field[..., 0], columns.astype("float32") + field[..., 1]
        # bilinear sampling written out: ops.image.map_coordinates over (batch, y, x) gives the same values but
        # fails under TensorFlow when the batch size is unknown, as it is in the graph model.fit traces
        flat = ops.reshape(images, (batch, height * width))
        top, left, moved = ops.floor(y), ops.floor(x), 0.0
        for corner_y in (top, top + 1):
            for corner_x in (left, left + 1):
                weight = (1 - ops.abs(y - corner_y)) * (1 - ops.abs(x - corner_x))
                inside = (corner_y >= 0) & (corner_y < height) & (corner_x >= 0) & (corner_x < width)
                index = ops.clip(corner_y, 0, height - 1) * width + ops.clip(corner_x, 0, width - 1)
                pixels = ops.take_along_axis(flat, ops.reshape(ops.cast(index, "int32"), (batch, -1)), axis=1)
                moved = moved + ops.where(inside, weight, 0.0) * ops.reshape(pixels, (batch, height, width))
        return ops.expand_dims(moved, -1)


def sample_affine(images, a0, a1, a2, b0, b1, b2):
    """Output pixel (x, y) of each image, x being the column, reads its input at (a0 x + a1 y + a2, b0 x + b1 y + b2),
    bilinearly, blank outside the frame; each coefficient holds one value per image."""
    zeros = ops.zeros_like(a2)  # the last row of a projective transform: affine, so no perspective
    transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="constant")


class RandomAffine(Resampling):
    """Rotation, zoom (each axis its own factor) and shift as one affine transform, sampled bilinearly once: what
    the tutorial's ImageDataGenerator did. Keras's RandomRotation, RandomZoom and RandomTranslation each resample,
    and three bilinear passes blur: over 2,000 training digits they cut the sum of squared pixels by 20% and the
    share of pixels above 0.9 from 8.8% to 3.4%, where the test digits the model must read stay sharp."""

    tensorflow_xla = False

    def __init__(self, rotation, zoom, shift, seed=None, **kwargs):
        super().__init__(**kwargs)
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
        return sample_affine(images, a0, a1, a2, b0, b1, b2)


def pixel_indices(height, width):
    """Each pixel's row and column as float32, shaped (1, height, 1, 1) and (1, 1, width, 1) to broadcast
    against a batch of (N, height, width, 1) images."""
    return (ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1)),
            ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1)))


def ink_moments(images):
    """Per image: a function averaging a per-pixel value over the ink, the ink's centre (row, column), and each
    pixel's distance from it (row, column), shaped to broadcast against the images."""
    rows, columns = pixel_indices(images.shape[1], images.shape[2])
    mass = ops.sum(images, axis=(1, 2, 3)) + 1e-6  # a blank image has no moments, not a division by zero

    def average(values):  # per image, weighted by ink
        return ops.sum(images * values, axis=(1, 2, 3)) / mass
    row_centre, column_centre = average(rows), average(columns)
    return (average, (row_centre, column_centre),
            (rows - ops.reshape(row_centre, (-1, 1, 1, 1)), columns - ops.reshape(column_centre, (-1, 1, 1, 1))))


class Deskew(Resampling):
    """Shears each digit upright: the slant is the pixels' row-column covariance over their row variance, and
    every row slides sideways by slant x its distance from the digit's centre of mass, so the centre stays put
    (the TTA and augmentation shifts survive). The classic MNIST "deskewing" (LeCun et al.'s table), here in
    training and prediction alike, as a different view of the digits for ensemble members. Keras ops only."""

    tensorflow_xla = False

    def call(self, images):
        average, (row_centre, _), (row_offset, column_offset) = ink_moments(images)
        # clipped: a flat stroke (a dash, a blob) has almost no row variance and would shear without limit
        slant = ops.clip(average(row_offset * column_offset) / (average(row_offset**2) + 1e-6), -1.0, 1.0)
        zeros, ones = ops.zeros_like(slant), ops.ones_like(slant)
        # output (x, y) reads input (x + slant * (y - row_centre), y): x is the column, y the row
        return sample_affine(images, ones, slant, -slant * row_centre, zeros, ones, zeros)


class InkWidth(Resampling):
    """Stretches or squeezes each digit sideways about its centre of mass until its ink's column standard
    deviation is `target` pixels (MNIST's digits: 3.8 on average, a 1 about 2.2, a 0 about 5): Ciresan et al.'s
    width normalisation (their multi-column network read digits normalised to 10-20 pixels wide), by moments
    rather than the bounding box, so a stray pixel does not set the width. Training and prediction alike, as a
    different view of the digits for ensemble members. The factor is kept within 1/2-2: a 1 is a bar, not a
    block. Keras ops only."""

    tensorflow_xla = False

    def __init__(self, target, **kwargs):
        super().__init__(**kwargs)
        self.target = target

    def call(self, images):
        average, (_, column_centre), (_, column_offset) = ink_moments(images)
        spread = ops.sqrt(average(column_offset**2)) + 1e-6
        stretch = ops.clip(self.target / spread, 0.5, 2.0)
        zeros, ones = ops.zeros_like(stretch), ops.ones_like(stretch)
        # output (x, y) reads input (centre + (x - centre) / stretch, y)
        return sample_affine(images, 1 / stretch, zeros, column_centre * (1 - 1 / stretch), zeros, ones, zeros)


class RandomCutout(layers.Layer):
    """Blanks a `size` x `size` square of each training digit, centred on a uniformly random pixel, so part of it
    often falls outside the frame or on blank paper (as DeVries and Taylor's cutout): the model must read a digit
    with a piece of a stroke missing, as some hard digits are written. Keras ops only."""

    def __init__(self, size, seed=None, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.size = size
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or self.size == 0:
            return images
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def corner(side):  # the square's first row (or column), one per image: its centre anywhere in the frame
            centre = ops.floor(keras.random.uniform((batch, 1, 1, 1), 0, side, seed=self.seed_generator))
            return centre - self.size // 2
        top, left = corner(height), corner(width)
        rows, columns = pixel_indices(height, width)
        inside = (rows >= top) & (rows < top + self.size) & (columns >= left) & (columns < left + self.size)
        return ops.where(inside, ops.zeros_like(images), images)


def augmentation(config, seed=None) -> keras.Sequential:
    """Elastic distortion (if on), rotation, zoom and shift as one layer, then cutout (if on); seeded so a member's
    augmentation is reproducible. `config.affine` picks one resampling (RandomAffine) or Keras's three layers."""
    seed = config.seed if seed is None else seed
    elastic = [RandomElastic(config.elastic, seed=seed + 3)] if config.elastic else []
    if config.affine == "once":
        moves = [RandomAffine(config.rotation, config.zoom, config.shift, seed=seed)]
    else:
        moves = [
            # RandomRotation takes a fraction of a full turn
            layers.RandomRotation(config.rotation / 360.0, fill_mode="constant", seed=seed),
            layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed + 1),
            layers.RandomTranslation(config.shift, config.shift, fill_mode="constant", seed=seed + 2),
        ]
    cutout = [RandomCutout(config.cutout, seed=seed + 4)] if config.cutout else []
    stack = keras.Sequential(elastic + moves + cutout, name="augmentation")
    if keras.backend.backend() == "jax":
        # Keras marks these layers unfit for jit, and one such layer turns jit off for the whole model:
        # on an H100 each step then ran op by op, 0.6 s per batch of 64. Their JAX ops (map_coordinates under
        # vmap, seeds carried as state) compile fine, so the model keeps jit.
        for layer in stack.layers:
            layer.supports_jit = True
    return stack


def placement(config) -> str:
    """none, model or map. `auto` is model everywhere: on an accelerator it runs on the device, and on this
    2-core CPU it measured as fast as the map over 8,600 rows and steadier over 37,800, where the map's AUTOTUNE
    threads slowed a later epoch by 60% (experiments/README.md, "Where augmentation runs")."""
    if config.rotation == config.zoom == config.shift == config.elastic == config.cutout == 0:
        return "none"
    if config.augment_in == "map" and keras.backend.backend() != "tensorflow":
        raise ValueError(f"config: augment_in=map needs the tensorflow backend, not {keras.backend.backend()}")
    return "map" if config.augment_in == "map" else "model"


# Test-time augmentation moves: one pixel up, down, left, right, then the diagonals. np.roll wraps around, which
# is harmless here: MNIST digits sit in a 20x20 box centred in 28x28, so the wrapped border is blank.
SHIFTS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
