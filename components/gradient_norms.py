"""The global gradient norm of every training step, before clipping, as epoch metrics.

What the tutorials on exploding gradients ask you to watch: :class:`GradientNorms` adds the
epoch's mean and largest step norm (``grad_norm_mean``, ``grad_norm_max``) to Keras's logs, so
``epochs.csv``, the learning curves and MLflow's per-epoch metrics carry them. It wraps the
``apply`` of the one optimizer instance being trained (clipping happens inside ``apply``, so the
norm is the unclipped one); the optimizer's class, and so the saved model, stay Keras's own.
"""

from __future__ import annotations

import keras
import tensorflow as tf

_TRACKED = "_records_gradient_norms"


class GradientNorms(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self._total = tf.Variable(0.0, trainable=False)
        self._largest = tf.Variable(0.0, trainable=False)
        self._steps = tf.Variable(0.0, trainable=False)

    def set_model(self, model):
        super().set_model(model)
        optimizer = model.optimizer
        if getattr(optimizer.apply, _TRACKED, False):
            return
        apply = optimizer.apply

        def apply_recording_the_norm(grads, trainable_variables=None):
            norm = tf.linalg.global_norm([grad for grad in grads if grad is not None])
            self._total.assign_add(norm)
            self._largest.assign(tf.maximum(self._largest, norm))
            self._steps.assign_add(1.0)
            return apply(grads, trainable_variables)

        setattr(apply_recording_the_norm, _TRACKED, True)
        optimizer.apply = apply_recording_the_norm

    def on_epoch_begin(self, epoch, logs=None):
        for variable in (self._total, self._largest, self._steps):
            variable.assign(0.0)

    def on_epoch_end(self, epoch, logs=None):
        steps = float(self._steps.numpy())
        if logs is not None and steps:
            logs["grad_norm_mean"] = float(self._total.numpy()) / steps
            logs["grad_norm_max"] = float(self._largest.numpy())
