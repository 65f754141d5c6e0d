"""The CNN families, as Keras functional models. Keras and keras.ops only: they run on any backend.

- tutorial: the tutorial's CNN (Yassine Ghouzam, "Introduction to CNN Keras"), kept exactly.
- bn:   the BatchNorm CNN of the best public ensemble kernel (Chris Deotte's "25 Million Images!").
- deep: a deeper no-pooling BatchNorm CNN with 3x3, 5x5 and 7x7 kernels, for ensemble diversity.
- lenet: a LeNet-shaped CNN (two convolution stages, one dense layer) with a fifteenth of bn's arithmetic:
        the `--fast` family.
- m5:   the 5x5 model of An, Lee, Park, Yang and So, "An Ensemble of Simple Convolutional Neural Network Models
        for MNIST Digit Recognition" (arXiv 2008.10400): five valid 5x5 BatchNorm convolutions, no pooling.
"""

import keras
from keras import layers


def conv_bn(x, filters, kernel_size, strides=1, padding="valid"):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


# `dropout` scales each family's published rates: 1 keeps them; short runs learn faster with less (config.py).
def tutorial_body(x, dropout=1.0):
    x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25 * dropout)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2, strides=2)(x)
    x = layers.Dropout(0.25 * dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    return layers.Dropout(0.5 * dropout)(x)


def bn_body(x, dropout=1.0):
    # Deotte's kernel: strided 5x5 convolutions learn the pooling; 128C4 collapses the 4x4 map to one vector.
    x = conv_bn(x, 32, 3)
    x = conv_bn(x, 32, 3)
    x = conv_bn(x, 32, 5, strides=2, padding="same")
    x = layers.Dropout(0.4 * dropout)(x)
    x = conv_bn(x, 64, 3)
    x = conv_bn(x, 64, 3)
    x = conv_bn(x, 64, 5, strides=2, padding="same")
    x = layers.Dropout(0.4 * dropout)(x)
    x = conv_bn(x, 128, 4)
    x = layers.Flatten()(x)
    return layers.Dropout(0.4 * dropout)(x)


def deep_body(x, dropout=1.0):
    # No pooling at all: valid 3x3, 5x5 and 7x7 convolutions shrink 28 -> 6 (each loses kernel - 1), so every
    # pixel keeps a path to the classifier; different receptive fields from `bn` make the ensemble's errors less
    # correlated.
    for filters, kernel_size in ((32, 3), (32, 3), (48, 5), (64, 5), (96, 7), (128, 5)):
        x = conv_bn(x, filters, kernel_size)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(0.3 * dropout)(x)


def m5_body(x, dropout=1.0):
    # The paper's M5: 28 -> 8 by five valid 5x5 convolutions, the 8x8x160 map flattened straight into the
    # classifier, trained long (the `gpu` preset). It has no dropout, so `dropout` is unused; the BatchNorm the
    # paper puts on the ten logits is left out (ours are a softmax Dense, as in every family).
    for filters in (32, 64, 96, 128, 160):
        x = conv_bn(x, filters, 5)
    return layers.Flatten()(x)


def lenet_body(x, dropout=1.0):
    # Conv5x5x24 stride 2 - Conv3x3x32 - pool - Dense 256, for the fast loop. LeNet's first pooling is folded into
    # a stride-2 first convolution: on a CPU a one-channel convolution over every pixel and its max-pool gradient
    # cost most of a step. No BatchNorm (its step time outweighs what a few epochs gain) and no dropout (a few
    # epochs do not overfit), so `dropout` is unused. Measured against other shapes: the research log.
    x = layers.Conv2D(24, 5, strides=2, activation="relu")(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    return layers.Dense(256, activation="relu")(x)


def body(family: str):
    """The body of a family named in config.FAMILIES: the function `<family>_body` above."""
    return globals()[f"{family}_body"]


def build_model(config, augmentation=None, name=None) -> keras.Model:
    """The family named by `config.model`, with `augmentation` (a layer, active in training only) in front. `name`
    (default: the family's) names the model, and its output in a stacked model's history."""
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = body(config.model)(x, config.dropout_scale)
    # float32 softmax: under mixed precision a bfloat16/float16 softmax rounds confident outputs to 1.0
    outputs = layers.Dense(10, activation="softmax", dtype="float32", name="digit")(x)
    model = keras.Model(inputs, outputs, name=name or config.model)
    for layer in model.layers:  # read at each training step, so setting it here is enough
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = config.bn_momentum
    return model
