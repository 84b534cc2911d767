"""The step-counted run's checkpoint callback: with `overlap`, a due checkpoint's file
is written in a background thread while the callbacks between `start` and it run
(an evaluation), and becomes a checkpoint only after them; without, it is written
when the callback runs."""

import sys
import threading

import keras
import numpy as np
import pytest

from keras_bert_app.training.callbacks import PeriodicCheckpoint
from keras_bert_app.training.checkpointing import CheckpointManager


def trained_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones([4, 3]), np.zeros([4, 2]), verbose=0)
    return model


class RecordingManager(CheckpointManager):
    def __init__(self, directory, events, fail=False):
        super().__init__(directory)
        self.events, self.fail = events, fail

    def write(self, model, step):
        self.events.append(("write starts", step, threading.current_thread().name))
        if self.fail:
            raise OSError("disk full")
        super().write(model, step)
        self.events.append(("write ends", step))

    def publish(self, step):
        self.events.append(("publish", step))
        super().publish(step)


class Evaluation(keras.callbacks.Callback):
    """Stands for the task's evaluation: it sees no checkpoint of this step yet."""

    def __init__(self, manager, events):
        super().__init__()
        self.manager, self.events = manager, events

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("evaluation", tuple(self.manager.steps())))


def interval_end(callbacks, model, epoch):
    """What Keras' fit does at an interval's end: each callback in list order."""
    for callback in callbacks:
        callback.set_model(model)
    for callback in callbacks:
        callback.on_epoch_end(epoch)


def test_an_overlapped_checkpoint_is_written_beside_the_evaluation_and_published_after(
        tmp_path):
    model, events = trained_model(), []
    manager = RecordingManager(tmp_path, events)
    checkpoint = PeriodicCheckpoint(manager, save_steps=5, num_train_steps=20,
                                    steps_per_epoch=5, overlap=True)
    interval_end([checkpoint.start, Evaluation(manager, events), checkpoint], model, 0)
    checkpoint.on_train_end()
    writes = [e for e in events if e[0] == "write starts"]
    assert len(writes) == 1 and writes[0][2].startswith("checkpoint")  # its own thread
    assert ("evaluation", ()) in events  # not a checkpoint while it ran
    assert events.index(("publish", 5)) > events.index(("evaluation", ()))
    assert events.index(("publish", 5)) > events.index(("write ends", 5))
    assert manager.steps() == [5]
    restored = trained_model()
    restored.layers[0].kernel.assign(np.zeros([3, 2]))
    assert manager.restore(restored) == 5
    for a, b in zip(model.weights + model.optimizer.variables,
                    restored.weights + restored.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


def test_a_failed_background_write_fails_the_interval_and_leaves_no_checkpoint(tmp_path):
    events = []
    manager = RecordingManager(tmp_path, events, fail=True)
    checkpoint = PeriodicCheckpoint(manager, save_steps=5, num_train_steps=20,
                                    steps_per_epoch=5, overlap=True)
    with pytest.raises(OSError, match="disk full"):
        interval_end([checkpoint.start, Evaluation(manager, events), checkpoint],
                     trained_model(), 0)
    checkpoint.on_train_end()
    assert manager.steps() == [] and ("publish", 5) not in events


def test_without_overlap_or_off_a_save_step_it_writes_when_it_runs(tmp_path):
    model, events = trained_model(), []
    manager = RecordingManager(tmp_path, events)
    checkpoint = PeriodicCheckpoint(manager, save_steps=10, num_train_steps=20,
                                    steps_per_epoch=5)
    evaluation = Evaluation(manager, events)
    interval_end([checkpoint.start, evaluation, checkpoint], model, 0)  # step 5: none
    assert events == [("evaluation", ())]
    interval_end([checkpoint.start, evaluation, checkpoint], model, 1)  # step 10
    assert events[1:] == [("evaluation", ()),
                          ("write starts", 10, threading.current_thread().name),
                          ("write ends", 10), ("publish", 10)]
    assert manager.steps() == [10]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
