"""Callbacks of a step-counted training run: TensorBoard scalars per logging
interval, checkpoints every N steps, and a stop at exactly the last step.

`run_pretraining` makes each Keras "epoch" one logging interval of `log_steps`
batches, so Keras' per-epoch metric means are per-interval means and
`epoch * log_steps` is the global step, which survives a restart.
"""

import time

import keras
import numpy as np


def global_step(epoch, batch, steps_per_epoch):
    """Training steps done after `batch` (0-based) of `epoch` (0-based, absolute)."""
    return epoch * steps_per_epoch + batch + 1


def interval_end_step(epoch, steps_per_epoch, num_train_steps):
    """The global step at the end of interval `epoch` (the last one may stop early)."""
    return min((epoch + 1) * steps_per_epoch, num_train_steps)


class StepLimit(keras.callbacks.Callback):
    """Stops training once `num_train_steps` steps are done, mid-interval if needed."""

    def __init__(self, num_train_steps, steps_per_epoch):
        super().__init__()
        self.num_train_steps = num_train_steps
        self.steps_per_epoch = steps_per_epoch
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self._epoch, batch, self.steps_per_epoch) >= self.num_train_steps:
            self.model.stop_training = True


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint when an interval ends on a multiple of `save_steps`, and
    at the last step; that one without the optimizer's state unless
    `optimizer_state_at_end` (see `checkpointing`)."""

    def __init__(self, manager, save_steps, num_train_steps, steps_per_epoch,
                 enabled=True, optimizer_state_at_end=True):
        super().__init__()
        self.manager = manager
        self.save_steps = save_steps
        self.num_train_steps = num_train_steps
        self.steps_per_epoch = steps_per_epoch
        self.enabled = enabled  # False on non-chief workers
        self.optimizer_state_at_end = optimizer_state_at_end

    def on_epoch_end(self, epoch, logs=None):
        step = interval_end_step(epoch, self.steps_per_epoch, self.num_train_steps)
        last = step >= self.num_train_steps
        if self.enabled and (step % self.save_steps == 0 or last):
            self.manager.save(self.model, step,
                              optimizer_state=self.optimizer_state_at_end or not last)


class TensorBoardScalars(keras.callbacks.Callback):
    """Writes the interval's mean of every logged metric (`loss`, `masked_lm_loss`,
    `masked_lm_accuracy`, `next_sentence_loss`, `next_sentence_accuracy`), the
    learning rate and `examples_per_second` to TensorBoard, at the global step.

    Args:
        log_dir: the event file directory (`<model_dir>/logs/train`).
        global_batch_size: examples per step over all replicas.
        steps_per_epoch: steps per logging interval.
        num_train_steps: the last step (a final short interval is logged there).
    """

    def __init__(self, log_dir, global_batch_size, steps_per_epoch, num_train_steps):
        super().__init__()
        import tensorflow as tf  # TensorBoard's writer; TF is always installed

        self._tf = tf
        self.writer = tf.summary.create_file_writer(log_dir)
        self.global_batch_size = global_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.num_train_steps = num_train_steps
        self._started = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        step = interval_end_step(epoch, self.steps_per_epoch, self.num_train_steps)
        seconds = time.perf_counter() - self._started
        scalars = {name: float(value) for name, value in (logs or {}).items()
                   if np.ndim(value) == 0}
        scalars["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        scalars["examples_per_second"] = self._steps * self.global_batch_size / seconds
        with self.writer.as_default(step=step):
            for name, value in scalars.items():
                self._tf.summary.scalar(name, value)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
