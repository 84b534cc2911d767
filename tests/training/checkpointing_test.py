"""CheckpointManager: atomic checkpoints with the optimizer state, newest kept; a
finished run's last one without it, loaded only by a run that trains nothing after."""

import os
import sys

import keras
import numpy as np
import pytest

from keras_bert_app import names
from keras_bert_app.models import BertEncoder, BertPretrainer
from keras_bert_app.training import CheckpointManager, create_optimizer
from keras_bert_app.training.checkpointing import has_optimizer_state
from tests.helpers import encoder_batch, tiny_config


def compiled_pretrainer(seed):
    keras.utils.set_random_seed(seed)
    # No dropout: the two runs below must draw nothing at random.
    pretrainer = BertPretrainer(BertEncoder(tiny_config(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
    pretrainer.compile(optimizer=create_optimizer(1e-3, 100, 10))
    pretrainer.optimizer.build(pretrainer.trainable_variables)
    return pretrainer


def train(pretrainer, steps):
    x = encoder_batch(batch=4, seq=12)
    x[names.MASKED_LM_POSITIONS] = np.tile(np.arange(1, 4, dtype="int32"), (4, 1))
    y = {names.MASKED_LM_IDS: np.full((4, 3), 7, "int32"),
         names.MASKED_LM_WEIGHTS: np.ones((4, 3), "float32"),
         names.NEXT_SENTENCE_LABELS: np.zeros((4, 1), "int32")}
    pretrainer.fit(x, y, epochs=steps, verbose=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="on JAX and torch the restored SeedGenerator states are equal, "
                           "yet the next masks differ (measured); pre-training resumes "
                           "exactly on TensorFlow")
def test_restore_brings_back_the_dropout_random_stream(tmp_path):
    """Keras' weights file leaves out the layers' SeedGenerator states; the checkpoint
    keeps them, so a resumed run draws the dropout masks an uninterrupted one would."""

    def with_dropout():
        keras.utils.set_random_seed(5)
        model = BertPretrainer(BertEncoder(tiny_config(hidden_dropout_prob=0.3)))
        model.compile(optimizer=create_optimizer(1e-3, 100, 10))
        model.optimizer.build(model.trainable_variables)
        return model

    model = with_dropout()
    seed_states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    assert seed_states, "Keras renamed its SeedGenerator state: update checkpointing.py"
    assert not {id(v) for v in seed_states} & {id(w) for w in model.weights}

    whole = with_dropout()
    train(whole, steps=2)
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(whole, step=2)
    train(whole, steps=2)
    resumed = with_dropout()  # its random state is back at the start
    assert manager.restore(resumed) == 2
    train(resumed, steps=2)
    for expected, actual in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual),
                                   keras.ops.convert_to_numpy(expected), atol=1e-6,
                                   err_msg=expected.path)


def test_restore_brings_back_weights_and_optimizer_state(tmp_path):
    trained = compiled_pretrainer(seed=1)
    train(trained, steps=3)
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(trained, step=3)

    fresh = compiled_pretrainer(seed=2)
    assert CheckpointManager(tmp_path / "ckpt").restore(fresh) == 3
    assert int(fresh.optimizer.iterations) == 3
    for a, b in zip(trained.weights + trained.optimizer.variables,
                    fresh.weights + fresh.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    # Training on from the checkpoint equals training on without stopping.
    train(trained, steps=2)
    train(fresh, steps=2)
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a),
                                   keras.ops.convert_to_numpy(b), atol=1e-6)


def h5_names(path):
    import h5py

    found = []
    with h5py.File(path, "r") as f:
        f.visit(found.append)
    return found


def test_the_last_checkpoint_of_a_run_can_leave_the_optimizer_state_out(tmp_path):
    trained = compiled_pretrainer(seed=1)
    train(trained, steps=3)
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(trained, step=2)
    manager.save(trained, step=3, optimizer_state=False)
    full, final = manager.path(2), manager.path(3)
    assert has_optimizer_state(full) and not has_optimizer_state(final)
    # Keras' `objects_to_skip` writes none of the optimizer's variables (AdamW's two
    # moments: two thirds of the file).
    assert any(n.startswith("optimizer/") for n in h5_names(full))
    assert not any(n.startswith("optimizer") for n in h5_names(final))
    assert os.path.getsize(final) < 0.5 * os.path.getsize(full)

    # A run that ends at step 3 takes it: every model weight, and dropout's state.
    fresh = compiled_pretrainer(seed=2)
    assert manager.restore(fresh, final_step=3) == 3
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b), err_msg=a.path)
    assert int(fresh.optimizer.iterations) == 0  # untouched: nothing trains after it
    # Any run that would train on from it is refused: its optimizer would restart
    # from fresh moments and step 0 of the learning-rate schedule.
    for final_step in (None, 4):
        with pytest.raises(ValueError, match=r"Cannot resume from .*ckpt-3\.weights\.h5: "
                                             r"it ends a run"):
            manager.restore(compiled_pretrainer(seed=2), final_step=final_step)


def test_a_loss_scaled_optimizer_is_left_out_whole(tmp_path):
    def loss_scaled():
        keras.utils.set_random_seed(1)
        model = BertPretrainer(BertEncoder(tiny_config()))
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(
            create_optimizer(1e-3, 100, 10)))
        model.optimizer.build(model.trainable_variables)
        return model

    model = loss_scaled()
    manager = CheckpointManager(tmp_path)
    manager.save(model, step=1, optimizer_state=False)
    assert not any(n.startswith("optimizer") for n in h5_names(manager.path(1)))
    assert manager.restore(loss_scaled(), final_step=1) == 1


def test_optimizer_state_that_does_not_fit_is_an_error_not_a_fresh_start(tmp_path):
    """Keras loads such a file with a warning and leaves the optimizer fresh."""

    def with_sgd():  # the same model, another optimizer
        model = BertPretrainer(BertEncoder(tiny_config(
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
        model.compile(optimizer=keras.optimizers.SGD())
        model.optimizer.build(model.trainable_variables)
        return model

    CheckpointManager(tmp_path).save(compiled_pretrainer(seed=1), 5)
    with pytest.raises(ValueError, match=r"Cannot resume from .*ckpt-5\.weights\.h5: does "
                                         r"not hold optimizer state that fits its "
                                         r"optimizer: Skipping variable loading for "
                                         r"optimizer"):
        CheckpointManager(tmp_path).restore(with_sgd())
    # A run that trains nothing after the load (evaluation alone, a finished run)
    # takes the weights and leaves its own optimizer alone.
    evaluated = with_sgd()
    assert CheckpointManager(tmp_path).restore(evaluated, final_step=0) == 5
    for a, b in zip(compiled_pretrainer(seed=1).weights, evaluated.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b), err_msg=a.path)


def test_keeps_the_newest_and_ignores_partial_files(tmp_path):
    pretrainer = compiled_pretrainer(seed=1)
    manager = CheckpointManager(tmp_path, max_to_keep=2)
    assert manager.restore(pretrainer) == 0 and manager.latest_step() is None
    for step in (10, 20, 30):
        manager.save(pretrainer, step)
    # What a kill during a save leaves behind is never taken for a checkpoint.
    (tmp_path / ".partial-ckpt-40.weights.h5").write_bytes(b"truncated")
    assert manager.steps() == [20, 30] and manager.latest_step() == 30
    assert sorted(os.listdir(tmp_path)) == [
        ".partial-ckpt-40.weights.h5", "checkpoint.json", "ckpt-20.weights.h5",
        "ckpt-30.weights.h5"]


def test_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    CheckpointManager(tmp_path).save(compiled_pretrainer(seed=1), 5)
    other = BertPretrainer(BertEncoder(tiny_config(hidden_size=48, num_attention_heads=4)))
    other.compile(optimizer=create_optimizer(1e-3, 100))
    other.optimizer.build(other.trainable_variables)
    with pytest.raises(ValueError, match="Cannot resume from .*ckpt-5.weights.h5"):
        CheckpointManager(tmp_path).restore(other)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
