"""Training checkpoints that survive a kill at any moment: model and optimizer
state, and the random state of dropout, in one `.weights.h5` per step, written to a
temporary name and renamed, with an index written the same way.

The last checkpoint of a run that can never train further may leave the optimizer's
state out (`save(..., optimizer_state=False)`): a fine-tuning run's resume settings
include its step count, so nothing ever continues from its end, and AdamW's two
moments are 2/3 of the file (MiniLM: 273 → 91 MB; 0.45–0.6 → 0.15–0.2 s to write on
2 cores). The file says so itself, and `restore` loads it only into a run that trains
nothing after it (a rerun of the finished run, or evaluation alone)."""

import json
import os
import re

from keras_bert_app.files import removed_on_failure
from keras_bert_app.layers.initializers import load_error_reason, load_every_weight

CHECKPOINT_INDEX = "checkpoint.json"
# Keras' `save_weights` leaves out the states of the layers' `SeedGenerator`s
# (dropout's random stream), so a resumed run would draw other dropout masks than an
# uninterrupted one. They go into this group of the same file.
SEED_STATES_GROUP = "kba_seed_generator_states"
# A root attribute of the file: False when it holds no optimizer state (absent from
# files of older versions, which always held it).
OPTIMIZER_STATE_ATTR = "kba_optimizer_state"
_NAME = re.compile(r"^ckpt-(\d+)\.weights\.h5$")


class CheckpointManager:
    """Saves and finds the training checkpoints of one run.

    A checkpoint is `ckpt-<step>.weights.h5` (Keras' weights file of the model,
    which includes its optimizer's variables: moments, iteration count, loss scale,
    gradient accumulators; plus the dropout layers' random states, which Keras'
    file omits). A run's last one may leave the optimizer out (see the module). The
    newest `max_to_keep` are kept.

    Args:
        directory: where the checkpoints live (created on first save).
        max_to_keep: how many to keep.

    Example:
    >>> manager = CheckpointManager("/tmp/run/checkpoints")
    >>> step = manager.restore(model)  # 0 when there is none
    >>> manager.save(model, step=1000)
    """

    def __init__(self, directory, max_to_keep=3):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep} must be positive.")
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep

    def steps(self):
        """Steps of the complete checkpoints on disk, ascending."""
        if not os.path.isdir(self.directory):
            return []
        found = (_NAME.match(name) for name in os.listdir(self.directory))
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step):
        return os.path.join(self.directory, f"ckpt-{step}.weights.h5")

    def latest_step(self):
        """The newest step, or None. A file is there only once fully written."""
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, model, step, optimizer_state=True):
        """Writes the checkpoint of `step`; `optimizer_state=False` leaves the
        optimizer's variables out (only for a run's last step: see the module)."""
        import keras

        os.makedirs(self.directory, exist_ok=True)
        final = self.path(step)
        partial = os.path.join(self.directory, f".partial-ckpt-{step}.weights.h5")
        with_optimizer = bool(optimizer_state and model.optimizer is not None)
        with removed_on_failure(partial):
            # `objects_to_skip`: Keras' own way to leave an object's variables out
            # (tests/training/checkpointing_test.py pins it).
            keras.saving.save_weights(model, partial, objects_to_skip=None if (
                with_optimizer or model.optimizer is None) else [model.optimizer])
            _save_extras(model, partial, optimizer_state=with_optimizer)
        os.replace(partial, final)  # atomic: a kill leaves the old set intact
        write_json(os.path.join(self.directory, CHECKPOINT_INDEX),
                    {"latest_step": step, "latest": os.path.basename(final)})
        for old in self.steps()[:-self.max_to_keep]:
            os.remove(self.path(old))

    def restore(self, model, final_step=None):
        """Loads the newest checkpoint into `model` (whose optimizer must be built);
        returns its step, or 0 when there is none.

        `final_step`: the step the run ends at (0 for a run that only evaluates).
        When the checkpoint is there already, nothing trains after the load: the
        model's weights are loaded and its optimizer is left alone (it may be
        another one: evaluation alone with other optimizer flags). Otherwise
        training goes on from the checkpoint, which must then hold optimizer state
        that fits `model`'s optimizer (Keras skips state with another number of
        variables, and would train on from fresh moments and step 0 of the
        schedule): a checkpoint without it, or with such state, is refused. (AdamW
        and LAMB have the same variables: the runs' resume settings include the
        optimizer.)"""
        step = self.latest_step()
        if step is None:
            return 0
        path = self.path(step)
        try:
            with_optimizer = has_optimizer_state(path)
        except OSError as error:  # not an HDF5 file
            raise ValueError(f"Cannot resume from {path}: {error}") from error
        optimizer = model.optimizer
        trains_on = optimizer is not None and (final_step is None or step < final_step)
        if trains_on and not with_optimizer:
            raise ValueError(
                f"Cannot resume from {path}: it ends a run (it holds no optimizer "
                "state), and this run trains " + (f"to step {final_step}" if final_step
                                                   else "on") +
                ". Resume with the original settings or use a new model_dir.")
        try:
            # Every weight, or an error: the encoder may have been built without
            # drawing its initial values (`layers.initializers.weights_set_after`).
            if trains_on:
                load_every_weight(model, path, require_optimizer=True)
            else:
                load_every_weight(model, path, objects_to_skip=[optimizer]
                                  if optimizer is not None else None)
            _restore_seed_states(model, path)
        except Exception as error:  # a file from another model: say which and why
            reason = load_error_reason(error).rstrip(". ")
            raise ValueError(f"Cannot resume from {path}: {reason}. Was this model_dir "
                             "written by a run with another configuration?") from error
        return step


def _seed_states(model):
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def has_optimizer_state(path):
    """Whether the checkpoint at `path` holds its optimizer's state (read from the
    file: every version before `OPTIMIZER_STATE_ATTR` wrote it)."""
    import h5py

    with h5py.File(path, "r") as f:
        return bool(f.attrs.get(OPTIMIZER_STATE_ATTR, True))


def _save_extras(model, path, optimizer_state):
    """What Keras' file lacks: the dropout random states, and whether the file
    holds the optimizer's state."""
    import h5py
    import keras

    with h5py.File(path, "a") as f:
        f.attrs[OPTIMIZER_STATE_ATTR] = bool(optimizer_state)
        group = f.create_group(SEED_STATES_GROUP)
        for i, variable in enumerate(_seed_states(model)):
            data = group.create_dataset(f"{i:04d}", data=keras.ops.convert_to_numpy(variable))
            data.attrs["path"] = variable.path


def _restore_seed_states(model, path):
    """Restores the dropout random states (absent from files of older versions)."""
    import h5py

    with h5py.File(path, "r") as f:
        if SEED_STATES_GROUP not in f:
            return
        group = f[SEED_STATES_GROUP]
        variables = _seed_states(model)
        if len(group) != len(variables):
            raise ValueError(f"it holds {len(group)} random states, the model has "
                             f"{len(variables)}")
        for i, variable in enumerate(variables):
            variable.assign(group[f"{i:04d}"][()])


def write_json(path, value):
    """Writes `value` as JSON to `path` atomically (a temporary name, then a rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(partial, path)

