"""Distillation from trained teachers (issue 9: "distillation from a larger model trained on the
same data"). Not in the paper's recipe; a run uses it only with a `distill` config block
(`--teacher_dirs`).

The teachers are finished `kws_tf.train` runs (one, or several: their softened scores are
averaged, an ensemble teacher). They score exactly what the student sees: the augmented,
normalised batch, masks included (a "consistent" teacher, Beyer et al. 2022). So the student
takes the teachers' normalisation (`teacher_normalization`) instead of computing its own from
its seed's subset of its training clips (which may hold extra clips, `--extra_train_dir`);
teachers of another front-end or normalisation than each other are refused before training.

The batch labels become `[label, p_1 .. p_K]` (the teacher's scores at temperature T) and
`kws_tf.losses.distillation_loss` trains on
`alpha * CE(label, z) + (1 - alpha) * T^2 * KL(p_T || softmax(z / T))` (Hinton et al. 2015).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from kws_tf import features


class DistillError(ValueError):
    """Teachers that cannot teach this run; one line for the user."""


@dataclasses.dataclass
class Teachers:
    nets: list  # tf_keras models, logits out
    dirs: list
    temperature: float

    def soft_targets(self, x):
        """Mean of the teachers' softmax(logits / T) for a feature batch (a TF tensor)."""
        import tensorflow as tf

        probs = [tf.nn.softmax(tf.cast(net(x, training=False), tf.float32) / self.temperature) for net in self.nets]
        return tf.add_n(probs) / float(len(probs))

    def pack(self, x, y):
        """(x, labels) -> (x, [label, teacher scores...]) for the distillation loss."""
        import tensorflow as tf

        p = self.soft_targets(x)
        return x, tf.concat([tf.cast(y, tf.float32)[:, None], p], axis=-1)


def _same_normalization(a: features.Normalization, b: features.Normalization) -> bool:
    return (a.frontend == b.frontend and np.allclose(a.mean_f32(), b.mean_f32(), rtol=1e-4, atol=1e-5)
            and np.allclose(a.inv_std_f32(), b.inv_std_f32(), rtol=1e-4, atol=1e-5))


def teacher_normalization(distill: dict) -> features.Normalization:
    """The normalisation the student takes: its first teacher's (`normalization.json`)."""
    import json

    path = pathlib.Path(distill["teachers"][0]) / "normalization.json"
    try:
        return features.Normalization.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DistillError(f"teacher {path.parent}: no usable normalization.json ({type(e).__name__}); "
                           "a teacher must be a finished kws_tf.train run") from None


def load_teachers(distill: dict, normalization: features.Normalization, student_dir=None) -> Teachers:
    """The teachers of a `distill` config block, checked against the student's normalisation."""
    from kws_tf.export_io import ExportError, load_trained

    dirs = [pathlib.Path(d) for d in distill["teachers"]]
    if not dirs:
        raise DistillError("distill.teachers is empty: name at least one finished training run")
    nets = []
    for d in dirs:
        if student_dir is not None and d.resolve() == pathlib.Path(student_dir).resolve():
            raise DistillError(f"teacher {d} is the run being trained")
        try:
            t = load_trained(d)
        except ExportError as e:
            raise DistillError(f"teacher {d}: {e}") from None
        if not _same_normalization(t.normalization, normalization):
            raise DistillError(f"teacher {d} was trained on other features ({t.normalization.frontend} with its own "
                               f"normalisation than {dirs[0]}'s, which the student takes); teachers must share "
                               "one front-end and normalisation")
        nets.append(t.net)
    return Teachers(nets, [str(d.resolve()) for d in dirs], float(distill["temperature"]))
