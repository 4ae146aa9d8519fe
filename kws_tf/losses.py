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


def distillation_loss(alpha: float, temperature: float, label_smoothing: float = 0.0):
    """Keras loss on `(packed [B, 1 + K], logits [B, K])`, `packed` = [label, teacher scores at T]
    (`kws_tf.distill.Teachers.pack`): `alpha * CE(label) + (1 - alpha) * T^2 * KL(teacher || student_T)`.
    T^2 keeps the soft term's gradient on the scale of the hard one's (Hinton et al. 2015)."""
    import tensorflow as tf

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hard = classification_loss(label_smoothing)

    def distillation(packed, logits):
        labels, teacher = packed[:, 0], packed[:, 1:]
        log_student = tf.nn.log_softmax(logits / temperature, axis=-1)
        kl = tf.reduce_sum(teacher * (tf.math.log(tf.maximum(teacher, 1e-12)) - log_student), axis=-1)
        return alpha * hard(labels, logits) + (1.0 - alpha) * temperature ** 2 * tf.reduce_mean(kl)

    return distillation


def packed_accuracy():
    """Top-1 accuracy against the label column of distillation's packed targets, named "accuracy"
    like the plain run's metric (so val_accuracy, checkpoints and reports read the same)."""
    import tensorflow as tf
    import tf_keras as keras

    def accuracy(packed, logits):
        return tf.cast(tf.equal(tf.cast(packed[:, 0], tf.int64), tf.argmax(logits, axis=-1)), tf.float32)

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")
