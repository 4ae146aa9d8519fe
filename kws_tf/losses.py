"""The training loss: cross-entropy on integer labels, optionally against smoothed targets."""

from __future__ import annotations


def classification_loss(label_smoothing: float = 0.0):
    """Keras loss on `(labels [B] int, logits [B, K])`.

    `label_smoothing` e: the target is (1 - e) one-hot + e / K (Szegedy et al. 2016). Against
    overconfident scores on words the model has not heard, which is what a stream mostly gives
    it; 0 is the paper's plain cross-entropy (SparseCategoricalCrossentropy, unchanged).
    """
    import tensorflow as tf
    import tf_keras as keras

    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if label_smoothing == 0.0:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    inner = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def smoothed_sparse_crossentropy(y_true, logits):
        y = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(logits)[-1])
        return inner(y, logits)

    return smoothed_sparse_crossentropy
