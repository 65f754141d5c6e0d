import keras
import numpy as np
import pytest

from digit_recognizer import augment
from digit_recognizer.config import FAMILIES, Config
from digit_recognizer.model import build_model


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_gives_ten_probabilities(family):
    net = build_model(Config(model=family))
    probabilities = np.asarray(net(np.random.rand(3, 28, 28, 1).astype("float32"), training=False))
    assert probabilities.shape == (3, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_tutorial_is_the_tutorials_cnn():
    net = build_model(Config(model="tutorial", dropout_scale=1.0))
    convolutions = [(l.filters, l.kernel_size) for l in net.layers if isinstance(l, keras.layers.Conv2D)]
    assert convolutions == [(32, (5, 5)), (32, (5, 5)), (64, (3, 3)), (64, (3, 3))]
    assert [l.rate for l in net.layers if isinstance(l, keras.layers.Dropout)] == [0.25, 0.25, 0.5]
    assert net.count_params() == 887_530  # the tutorial's model.summary() total


def test_lenet_is_a_fifteenth_of_bns_arithmetic():
    def multiply_adds(net):
        return sum(int(np.prod(l.output.shape[1:3])) * int(np.prod(l.kernel.shape)) for l in net.layers
                   if isinstance(l, keras.layers.Conv2D)) + sum(int(np.prod(l.kernel.shape)) for l in net.layers
                                                                if isinstance(l, keras.layers.Dense))
    small, bn = multiply_adds(build_model(Config(model="lenet"))), multiply_adds(build_model(Config(model="bn")))
    assert 0.9e6 < small < 1.1e6 and small < bn / 15, (small, bn)
    first = next(l for l in build_model(Config(model="lenet")).layers if isinstance(l, keras.layers.Conv2D))
    assert first.strides == (2, 2)  # no one-channel convolution over every pixel: the CPU's slowest layer


def test_dropout_scale_multiplies_each_rate():
    net = build_model(Config(model="bn", dropout_scale=0.5))
    assert [l.rate for l in net.layers if isinstance(l, keras.layers.Dropout)] == [0.2, 0.2, 0.2]


def test_softmax_stays_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        net = build_model(Config(model="bn"))
        assert net.layers[-1].compute_dtype == "float32"
        assert net.layers[1].compute_dtype == "bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")


def test_augmentation_inside_model_is_training_only():
    config = Config(model="tutorial", dropout_scale=0.0)  # no dropout, no BatchNorm: only augmentation trains apart
    net = build_model(config, augment.augmentation(config))
    plain = build_model(config)  # the same network without the augmentation, given the same weights
    for mine, theirs in zip(plain.layers[1:], net.layers[2:]):
        mine.set_weights(theirs.get_weights())
    images = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert net.layers[1].name == "augmentation"
    assert np.allclose(net(images, training=False), plain(images, training=False), atol=1e-6)  # inference: as is
    assert not np.allclose(net(images, training=True), plain(images, training=True), atol=1e-4)  # training: moved


def test_m5_is_the_papers_five_valid_convolutions():
    net = build_model(Config(model="m5"))
    convolutions = [(l.filters, l.kernel_size, l.padding) for l in net.layers if isinstance(l, keras.layers.Conv2D)]
    assert convolutions == [(f, (5, 5), "valid") for f in (32, 64, 96, 128, 160)]
    assert net.get_layer("digit").input.shape == (None, 8 * 8 * 160)  # no pooling: 28 - 5 * 4 = 8


def test_bn_momentum_reaches_every_batchnorm_and_its_updates():
    # momentum 0: one training step sets each moving statistic to that batch's own, so inference then reads
    # the batch exactly as training did (learning rate 0 and no dropout keep everything else still)
    net = build_model(Config(model="bn", bn_momentum=0.0, dropout_scale=0.0))
    assert {l.momentum for l in net.layers if isinstance(l, keras.layers.BatchNormalization)} == {0.0}
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    labels = np.eye(10, dtype="float32")[np.arange(8)]
    net.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy")
    net.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.allclose(net(images, training=False), net(images, training=True), atol=1e-4)
