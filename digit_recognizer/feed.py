"""The training rows as `fit` takes them: numpy arrays, which Keras batches and shuffles; on TensorFlow, the same
pipeline that Keras builds for numpy arrays, built here with tf.data's autotuning off.

Why: with autotuning on, each epoch after the first began with a wait of up to 5 s, both cores idle, while the last
epoch's pipeline ended (TensorFlow 2.20 and 2.21; the research log). Same rows in the same order, so the same
weights. Keras's order on TensorFlow is one permutation, the same every epoch, once a seed is set: kept here, so
the recipe's results do not move (the research log).
"""

import keras


def fit_rows(images, labels, batch_size: int) -> dict:
    """fit's arguments for `images` and `labels` (an array, or a dict of arrays: one per output) in batches."""
    if keras.backend.backend() != "tensorflow":
        return {"x": images, "y": labels, "batch_size": batch_size, "shuffle": True}
    import tensorflow as tf
    rows, full = len(images), len(images) // batch_size
    # as Keras's own: plain functions, not converted by AutoGraph (which would leave files in $TMPDIR when a run
    # is stopped at once: kernel.py's Ctrl-C)
    plain = tf.autograph.experimental.do_not_convert

    @plain
    def permutation(_):  # Keras's ops in Keras's order: the shuffle's seed, and so the order, is Keras's
        indices = tf.range(rows, dtype=tf.int64)
        return tf.random.shuffle(indices)

    @plain
    def batches(indices):
        found = tf.data.Dataset.from_tensor_slices(tf.reshape(indices[:full * batch_size], [full, batch_size]))
        if rows % batch_size:
            found = found.concatenate(tf.data.Dataset.from_tensors(indices[full * batch_size:]))
        return found

    arrays = keras.tree.map_structure(tf.convert_to_tensor, (images, labels))
    data = tf.data.Dataset.zip((tf.data.Dataset.range(1).map(permutation).prefetch(1).flat_map(batches),
                                tf.data.Dataset.from_tensors(arrays).repeat()))
    data = data.map(plain(lambda picked, both: keras.tree.map_structure(lambda a: tf.gather(a, picked), both)),
                    num_parallel_calls=2)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False  # as Keras: nothing to rewrite
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.with_options(options).prefetch(2)
    # the number of batches known, so the progress line and callbacks see it
    data = data.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
    return {"x": data, "shuffle": False}  # shuffled above
