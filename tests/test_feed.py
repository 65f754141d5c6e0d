import keras
import numpy as np
import pytest

from digit_recognizer import feed

on_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the pipeline is TensorFlow's")


def batches_seen(fit_arguments, epochs=3):
    """The labels of each batch a fit of a tiny model takes, in order, and its weights after the fit."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((1,))
    net = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    net.compile("sgd", "mse", run_eagerly=True)
    seen, step = [], net.train_step

    def recording_step(data):
        seen.append(np.asarray(data[1]).ravel().tolist())
        return step(data)
    net.train_step = recording_step
    net.fit(**fit_arguments, epochs=epochs, verbose=0)
    return seen, net.get_weights()


@on_tensorflow
def test_the_rows_come_in_kerass_order_so_the_weights_are_kerass():
    images, labels = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10, dtype=np.float32)
    keras_seen, keras_weights = batches_seen({"x": images, "y": labels, "batch_size": 4, "shuffle": True})
    keras.utils.set_random_seed(1)  # the pipeline takes the shuffle's seed as it is built
    seen, weights = batches_seen(feed.fit_rows(images, labels, 4))
    assert seen == keras_seen and [len(b) for b in seen[:3]] == [4, 4, 2]  # the short batch last
    assert sorted(sum(seen[:3], [])) == list(range(10)) and seen[:3] != [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(np.array_equal(a, b) for a, b in zip(weights, keras_weights))


@on_tensorflow
def test_the_pipeline_does_not_autotune_and_knows_its_length():
    labels = {"a": np.arange(6), "b": np.arange(6) * 10}  # one array per output, gathered alike
    data = feed.fit_rows(np.zeros((6, 2), np.float32), labels, 4)["x"]
    assert data.options().autotune.enabled is False and int(data.cardinality()) == 2
    first = next(iter(data))[1]
    assert np.array_equal(np.asarray(first["b"]), np.asarray(first["a"]) * 10)


def test_other_backends_take_the_arrays(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    images, labels = np.zeros((6, 2)), np.arange(6)
    assert feed.fit_rows(images, labels, 4) == {"x": images, "y": labels, "batch_size": 4, "shuffle": True}
