"""What every fine-tuning runner shares (`keras_bert_app.training.fine_tuning`): the
schedule in steps, and evaluation at checkpoints on the float32 model the run ends
with, so eval_results.json is what the model directory (and its export) scores."""

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from keras_bert_app.plots import read_scalars
from keras_bert_app.training.fine_tuning import schedule
from tests.helpers import tiny_config, write_tiny_pretrained_dir


def plan(examples=1000, **settings):
    defaults = dict(num_train_steps=None, num_train_epochs=3.0, train_batch_size=32,
                    save_checkpoints_steps=None, log_steps=None, steps_per_execution=1)
    return schedule(SimpleNamespace(**dict(defaults, **settings)), examples)


def test_epochs_become_steps_and_a_checkpoint_comes_about_once_an_epoch():
    # 1,000 examples in batches of 32: 32 steps an epoch (the last one partial).
    got = plan()
    assert (got.num_steps, got.save_steps, got.log_steps) == (93, 32, 32)
    # A long epoch is logged in intervals of at most 100 steps, and the checkpoint
    # rounds up to whole intervals.
    got = plan(num_train_epochs=1.0, train_batch_size=8)
    assert (got.num_steps, got.save_steps, got.log_steps) == (125, 200, 100)


def test_given_steps_and_intervals_win_and_must_nest():
    got = plan(num_train_steps=10, save_checkpoints_steps=4)
    assert (got.num_steps, got.save_steps, got.log_steps) == (10, 4, 4)
    with pytest.raises(ValueError, match="multiple of log_steps=3"):
        plan(save_checkpoints_steps=4, log_steps=3)
    with pytest.raises(ValueError, match="steps_per_execution=2"):
        plan(save_checkpoints_steps=6, log_steps=3, steps_per_execution=2)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return write_tiny_pretrained_dir(tmp_path_factory.mktemp("pretrained"))


def test_mixed_precision_runs_record_the_scores_of_the_float32_model_they_end_with(
        pretrained, tmp_path):
    """Evaluated during a bfloat16 run, the best checkpoint's recorded results are the
    float32 copy's: evaluating the finished model directory alone gives them again
    (the bfloat16 training model's loss differs in the third digit)."""
    from keras_bert_app.training.classification import ClassifierRunConfig, run_classifier

    rows = [("the king is good", "pos"), ("a dead lord", "neg"), ("so good", "pos"),
            ("dead of night", "neg"), ("good night sweet prince", "pos"),
            ("the prince is dead", "neg")]
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows * 4))
    common = dict(init_model_dir=pretrained, eval_file=str(train),
                  text_a_column="sentence", label_column="label", max_seq_length=16,
                  verbose=0)
    model_dir = tmp_path / "run"
    trained = run_classifier(ClassifierRunConfig(
        model_dir=str(model_dir), train_file=str(train), do_train=True, do_eval=True,
        num_train_steps=4, save_checkpoints_steps=2, train_batch_size=4,
        learning_rate=5e-3, mixed_precision="mixed_bfloat16", **common))
    # Both checkpoints were evaluated, on their own weights (the copy is refreshed).
    losses = dict(zip(*read_scalars(str(model_dir / "logs" / "eval"))["loss"]))
    assert sorted(losses) == [2, 4] and losses[2] != losses[4]
    alone = run_classifier(ClassifierRunConfig(
        model_dir=str(tmp_path / "again"), init_model_dir=str(model_dir), do_eval=True,
        **{k: v for k, v in common.items() if k != "init_model_dir"}))
    assert trained["loss"] == pytest.approx(alone["loss"], abs=1e-6)
    assert trained["loss"] == pytest.approx(losses[trained["best_step"]], abs=1e-6)
    with open(model_dir / "eval_results.json") as f:
        assert json.load(f)["loss"] == pytest.approx(alone["loss"], abs=1e-6)
    assert os.path.isfile(model_dir / "checkpoints" / "best" / "best.json")
    np.testing.assert_array_less(0.0, trained["loss"])


def _compiled(tmp_path, initialize):
    import keras

    from keras_bert_app.models import BertClassifier
    from keras_bert_app.training.checkpointing import CheckpointManager
    from keras_bert_app.training.distribution import create_distribution
    from keras_bert_app.training.fine_tuning import compiled_task_model

    config = SimpleNamespace(
        jit_compile=False, graph_optimization="auto", compilation_cache=False,
        compilation_cache_dir=None, mixed_precision="float32", remat=False,
        learning_rate=1e-3, warmup_proportion=0.1, optimizer="adamw", weight_decay=0.01,
        steps_per_execution=1)
    keras.utils.set_random_seed(3)
    return compiled_task_model(
        config, tiny_config(), lambda encoder: BertClassifier(encoder, num_classes=2),
        num_steps=4, manager=CheckpointManager(tmp_path / "checkpoints"),
        distribution=create_distribution("default"), initialize=initialize)


def test_a_fine_tuning_model_draws_its_new_head_but_not_the_encoder_it_replaces(
        tmp_path):
    """With pre-trained weights the encoder's values come from the source (its random
    values are not drawn); the classifier head is drawn at random as usual."""
    from keras_bert_app.models import BertEncoder

    source = BertEncoder(tiny_config())
    loaded = []

    def initialize(encoder):
        encoder.set_weights(source.get_weights())
        loaded.append(encoder)

    model, step, _ = _compiled(tmp_path, initialize)
    assert step == 0 and loaded == [model.encoder]
    for mine, theirs in zip(model.encoder.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert np.any(model.get_layer("logits").kernel.numpy()), "the head must be drawn"


def test_without_weights_or_checkpoint_the_encoder_is_drawn_at_random(tmp_path):
    model, step, _ = _compiled(tmp_path, None)
    kernels = [w for w in model.encoder.weights if w.path.endswith("kernel")]
    assert step == 0 and kernels
    for kernel in kernels:
        assert np.any(kernel.numpy()), kernel.path


def _classifier_data(pretrained, tmp_path, texts):
    from keras_bert_app.training import runner
    from keras_bert_app.training.classification import ClassifierRunConfig
    from keras_bert_app.training.classifier_inputs import read_classifier_data

    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n"
                                                  for i, t in enumerate(texts)))
    config = ClassifierRunConfig(init_model_dir=pretrained, model_dir=str(tmp_path / "run"),
                                 eval_file=str(dev), text_a_column="sentence",
                                 label_column="label", label_names=("0", "1"), max_seq_length=64,
                                 do_eval=True)
    data = read_classifier_data(config)
    model_config, vocab_file, text_config, _ = runner.model_sources(config)
    data.set_text(vocab_file, text_config)
    return data, model_config, data.eval_sets[0][1]


def test_evaluation_batches_pad_to_their_longest_row_and_outputs_keep_the_example_order(
        pretrained, tmp_path):
    """Without XLA (a CPU, or `jit_compile=False`), an evaluation sorts its examples by
    length and pads each batch only to its longest row, not to the row's length
    bucket (16, 32, 64): the outputs are the same, in the examples' order."""
    import keras
    import tensorflow as tf

    from keras_bert_app import names
    from keras_bert_app.models import BertClassifier, BertEncoder
    from keras_bert_app.text.text_dataset import text_columns, token_lengths

    # 4 to 28 positions with [CLS] and [SEP] (batches of 4: widths 8, 15, 28), shuffled.
    words = ["to be or not to be"] * 7
    texts = [" ".join(words[:1 + i % 7])[:4 + 7 * i] for i in range(12)]
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    data, model_config, examples = _classifier_data(pretrained, tmp_path, texts)
    keras.utils.set_random_seed(1)
    classifier = BertClassifier(BertEncoder(model_config), num_classes=2)
    classifier.jit_compile = False  # (Keras' "auto" on a CPU-only machine)
    widths, predict = [], classifier.predict

    def spy(dataset, **kwargs):
        widths.extend(b[names.INPUT_WORD_IDS].shape[1] for b in dataset)
        return predict(dataset, **kwargs)

    classifier.predict = spy
    outputs, loss = data.predict(classifier, examples, batch_size=4)
    lengths = np.sort(token_lengths(data.preprocessor, text_columns(np.asarray(texts))))
    assert widths == [int(lengths[i:i + 4].max()) for i in range(0, 12, 4)]
    assert set(widths) - {16, 32, 64}  # not the buckets
    # Each example alone, unpadded: the same probabilities, in the file's order.
    for text, output in zip(texts, outputs):
        alone = keras.ops.convert_to_numpy(keras.ops.softmax(
            classifier(data.preprocessor.pack([tf.constant([text])], pad_to_longest=True))))
        np.testing.assert_allclose(output, alone[0], atol=2e-6)
    assert np.isfinite(loss)


def test_without_xla_training_batches_pad_to_their_longest_row_not_their_bucket(
        pretrained, tmp_path):
    """The same examples in the same batches either way (one length bucket each);
    without XLA (`pad_to_longest`, what run_classifier passes then) each batch is
    only as wide as its longest row."""
    from keras_bert_app import names
    from keras_bert_app.training import runner
    from keras_bert_app.training.classification import ClassifierRunConfig
    from keras_bert_app.training.classifier_inputs import read_classifier_data

    words = "to be or not to be that is the question".split()
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(
        f"{' '.join(words[:1 + (5 * i) % 10] * (1 + i % 3))}\t{i % 2}\n" for i in range(16)))
    config = ClassifierRunConfig(init_model_dir=pretrained, model_dir=str(tmp_path / "run"),
                                 train_file=str(train), text_a_column="sentence",
                                 label_column="label", label_names=("0", "1"),
                                 max_seq_length=64, do_train=True)
    data = read_classifier_data(config)
    _, vocab_file, text_config, _ = runner.model_sources(config)
    data.set_text(vocab_file, text_config)
    widths = []
    for (bucketed, y), (longest, y_longest) in zip(
            data.train_dataset(4, seed=3).take(8),
            data.train_dataset(4, seed=3, pad_to_longest=True).take(8)):
        assert y.numpy().tolist() == y_longest.numpy().tolist()
        lengths = bucketed[names.INPUT_MASK].numpy().sum(axis=1)
        width = longest[names.INPUT_WORD_IDS].shape[1]
        assert bucketed[names.INPUT_WORD_IDS].shape[1] in (16, 32, 64)
        assert width == lengths.max()
        for key in names.ENCODER_INPUTS:
            np.testing.assert_array_equal(bucketed[key].numpy()[:, :width],
                                          longest[key].numpy())
        widths.append(width)
    assert set(widths) - {16, 32, 64}  # not the buckets


def test_an_xla_model_evaluates_on_length_buckets(pretrained, tmp_path):
    """With XLA every new length compiles again: batches keep their length buckets."""
    from keras_bert_app import names

    texts = ["to be", "to be or not to be " * 3, "or not"]
    data, _, examples = _classifier_data(pretrained, tmp_path, texts)
    widths = []

    def predict(dataset, **kwargs):
        widths.extend(b[names.INPUT_WORD_IDS].shape[1] for b in dataset)
        return np.zeros([len(texts), 2])

    xla_classifier = SimpleNamespace(jit_compile=True, num_classes=2, predict=predict)
    data.predict(xla_classifier, examples, batch_size=2)
    assert widths == [16, 32]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
