"""`pipelines.run_pretraining` end to end: real records from a real corpus, masked-LM
accuracy that rises, TensorBoard scalars, a model directory the other stages take,
resume after SIGKILL, raw-text input, continuing a model, clear errors."""

import glob
import json
import os
import signal
import sys
import time

import h5py
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import keras_bert_app as kba
from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining
from tests.helpers import (SHAKESPEARE_VOCAB, assert_start_up_logged, run_pipeline,
                           write_shakespeare_corpus)

TINY = dict(vocab_size=927, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64, hidden_act="gelu",
            hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, type_vocab_size=2,
            initializer_range=0.02)
SCALARS = {"loss", "masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss",
           "next_sentence_accuracy", "learning_rate", "examples_per_second"}


pipeline = run_pipeline


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pretraining")
    corpus = write_shakespeare_corpus(str(directory / "corpus.txt"), num_lines=3000,
                                      document_lines=100)
    config = directory / "bert_config.json"
    config.write_text(json.dumps(TINY))
    # In this process (the pipeline's own test: tests/data/pretraining_data_test.py).
    create_pretraining_data(PretrainingDataConfig(
        input_files=(corpus,), output_files=(str(directory / "records" / "a.tfrecord"),
                                             str(directory / "records" / "b.tfrecord")),
        vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, max_seq_length=64,
        max_predictions_per_seq=10, dupe_factor=2), verbose=0)
    return {"dir": directory, "corpus": corpus, "config": str(config),
            "records": str(directory / "records" / "*.tfrecord")}


def pretrain_flags(workspace, model_dir, steps, save, log, *extra):
    return (f"--input_file={workspace['records']}", f"--bert_config_file={workspace['config']}",
            f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=true",
            f"--model_dir={model_dir}", "--train_batch_size=32",
            f"--num_train_steps={steps}", "--num_warmup_steps=10", "--learning_rate=3e-3",
            f"--save_checkpoints_steps={save}", f"--log_steps={log}", "--seed=1", *extra)


def scalars(model_dir):
    files = glob.glob(os.path.join(model_dir, "logs", "train", "events.out.tfevents.*"))
    values = {}
    for path in sorted(files):
        accumulator = event_accumulator.EventAccumulator(
            path, size_guidance={event_accumulator.TENSORS: 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            for event in accumulator.Tensors(tag):
                values.setdefault(tag, {})[event.step] = float(
                    np.asarray(event.tensor_proto.float_val or
                               [np.frombuffer(event.tensor_proto.tensor_content,
                                              np.float32)[0]])[0])
    return values


def test_pretraining_raises_masked_lm_accuracy_and_writes_a_model_dir(workspace, tmp_path):
    model_dir = tmp_path / "run"
    result = pipeline("run_pretraining", *pretrain_flags(workspace, model_dir, 300, 100, 50))
    assert "steps 0 → 300" in result.stdout
    assert_start_up_logged(result.stdout)
    # The XLA choice is logged with its reason (this suite runs on CPU-only machines).
    assert "XLA off: 'auto' on a CPU-only machine" in result.stdout
    # So is Grappler's: 300 steps of a 64-wide model would not pay its rewrite back.
    assert "Grappler off: 'auto' on a CPU-only machine without XLA: 300 steps < " \
        in result.stdout

    logged = scalars(model_dir)
    assert SCALARS <= set(logged)
    assert sorted(logged["loss"]) == [50, 100, 150, 200, 250, 300]
    accuracy = logged["masked_lm_accuracy"]
    print(f"\nmasked_lm_accuracy by step: {accuracy}")
    assert accuracy[300] > 2 * accuracy[50] and accuracy[300] > 0.08, accuracy
    assert logged["masked_lm_loss"][300] < logged["masked_lm_loss"][50] - 0.5
    # Google's schedule: warmup 10, then linear decay from the peak at step 0 to 0.
    np.testing.assert_allclose(logged["learning_rate"][100], 3e-3 * (1 - 100 / 300), rtol=1e-4)
    assert all(v > 0 for v in logged["examples_per_second"].values())

    assert sorted(os.listdir(model_dir / "checkpoints")) == [
        "checkpoint.json", "ckpt-100.weights.h5", "ckpt-200.weights.h5",
        "ckpt-300.weights.h5"]
    # The model directory the other stages take.
    pretrainer = kba.load_pretrainer(model_dir)
    assert pretrainer.next_sentence_prediction
    preprocessor = kba.load_preprocessor(model_dir, seq_length=16)
    inputs = preprocessor(["To be, or not to be: that is the question."])
    outputs = pretrainer.encoder({k: inputs[k] for k in kba.names.ENCODER_INPUTS})
    assert outputs[kba.names.SEQUENCE_OUTPUT].shape == (1, 16, 64)
    run = json.loads((model_dir / "pretraining_run.json").read_text())
    assert run["data"]["max_seq_length"] == 64 and run["data"]["input"] == "tfrecord"


def test_a_killed_run_resumes_from_its_last_checkpoint(workspace, tmp_path):
    model_dir = tmp_path / "run"
    flags = pretrain_flags(workspace, model_dir, 60, 10, 10)
    process = pipeline("run_pretraining", *flags, background=True)
    checkpoints = model_dir / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (checkpoints / "ckpt-20.weights.h5").exists():
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    steps = sorted(int(name[5:-11]) for name in os.listdir(checkpoints)
                   if name.startswith("ckpt-"))
    assert 20 <= steps[-1] < 60, steps
    assert not (model_dir / "model.weights.h5").exists()

    result = pipeline("run_pretraining", *flags)  # the same command again
    assert f"steps {steps[-1]} → 60" in result.stdout
    with h5py.File(checkpoints / "ckpt-60.weights.h5") as f:
        # The optimizer's step counter went on from the checkpoint: 60, not 60 - resumed.
        assert int(f["optimizer"]["vars"]["0"][()]) == 60
    logged = scalars(model_dir)
    assert max(logged["loss"]) == 60 and min(logged["loss"]) == 10
    assert (model_dir / "model.weights.h5").exists()
    # Started once more, a finished run trains no further.
    again = pipeline("run_pretraining", *flags)
    assert "steps" not in again.stdout.split("Wrote")[0]


def test_bfloat16_xla_steps_per_execution_accumulation_and_lamb(workspace, tmp_path):
    model_dir = tmp_path / "run"
    result = pipeline(
        "run_pretraining", *pretrain_flags(workspace, model_dir, 8, 4, 4),
        "--num_warmup_steps=2", "--mixed_precision=mixed_bfloat16", "--jit_compile",
        "--steps_per_execution=2", "--gradient_accumulation_steps=2", "--optimizer=lamb")
    assert "XLA on: jit_compile=True given" in result.stdout
    with h5py.File(model_dir / "checkpoints" / "ckpt-8.weights.h5") as f:
        assert int(f["optimizer"]["vars"]["0"][()]) == 8  # Keras' batch counter
    logged = scalars(model_dir)
    assert sorted(logged["loss"]) == [4, 8]
    # The schedule runs over the 8 batches (4 updates): half-way after 4 batches.
    np.testing.assert_allclose(logged["learning_rate"][4], 3e-3 * (1 - 4 / 8), rtol=1e-4)
    pretrainer = kba.load_pretrainer(model_dir)  # float32 weights, whatever trained them
    assert {w.dtype for w in pretrainer.weights} == {"float32"}


def test_remat_trains_to_the_same_weights(workspace, tmp_path):
    # --remat recomputes each transformer block in the backward pass. With BERT's
    # dropout on, the recompute draws the same masks: the run ends with the same
    # weights as without it. The setting is in the run file only: the model
    # directory (config, weights) is the same as any other.
    result = pipeline("run_pretraining",
                      *pretrain_flags(workspace, tmp_path / "remat", 3, 3, 3),
                      "--train_batch_size=8", "--num_warmup_steps=1", "--remat")
    assert "steps 0 → 3" in result.stdout
    run_pretraining(PretrainingRunConfig(
        input_file=workspace["records"], bert_config=kba.BertConfig(**TINY),
        vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, model_dir=str(tmp_path / "plain"),
        train_batch_size=8, num_train_steps=3, num_warmup_steps=1, learning_rate=3e-3,
        save_checkpoints_steps=3, log_steps=3, seed=1, verbose=0))
    run = json.loads((tmp_path / "remat" / "pretraining_run.json").read_text())
    assert run["remat"] is True
    assert "remat" not in (tmp_path / "remat" / "bert_config.json").read_text()
    remat, plain = (kba.load_pretrainer(tmp_path / name) for name in ("remat", "plain"))
    assert not remat.encoder.remat
    for a, b in zip(remat.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_raw_text_input_then_continuing_from_the_model_dir(workspace, tmp_path):
    first = tmp_path / "mlm_only"
    result = pipeline("run_pretraining", f"--input_file={workspace['corpus']}",
                      f"--bert_config_file={workspace['config']}",
                      f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=true",
                      f"--model_dir={first}", "--train_batch_size=16",
                      "--max_seq_length=64", "--max_predictions_per_seq=10",
                      "--sentence_prediction=none", "--do_whole_word_mask=true",
                      "--num_train_steps=10", "--num_warmup_steps=2",
                      "--save_checkpoints_steps=10", "--seed=3")
    assert json.loads((first / "pretraining_run.json").read_text())["data"]["input"] == "text"
    assert not kba.load_pretrainer(first).next_sentence_prediction
    assert "next_sentence_loss" not in scalars(first)

    # Continue it on the NSP records: the encoder and MLM head carry over, the NSP
    # head starts fresh.
    second = tmp_path / "continued"
    result = pipeline("run_pretraining", f"--input_file={workspace['records']}",
                      f"--init_model_dir={first}", f"--model_dir={second}",
                      "--train_batch_size=16", "--num_train_steps=4",
                      "--num_warmup_steps=0", "--save_checkpoints_steps=4")
    assert "cls/seq_relationship/output_weights" in result.stdout  # reported missing
    assert kba.load_pretrainer(second).next_sentence_prediction


def test_bad_input_is_a_one_line_error(workspace, tmp_path):
    other_vocab = tmp_path / "vocab.txt"
    tokens = open(SHAKESPEARE_VOCAB, encoding="utf-8").read().splitlines()
    other_vocab.write_text("\n".join(tokens[:-1] + ["zzz"]) + "\n")
    result = pipeline("run_pretraining", *pretrain_flags(workspace, tmp_path / "run", 20, 10, 10),
                      f"--vocab_file={other_vocab}", check=False)
    assert result.returncode == 2
    assert "error: The records of" in result.stderr and "vocab_sha256" in result.stderr
    assert "Traceback" not in result.stderr

    with pytest.raises(ValueError, match="multiple of log_steps"):
        PretrainingRunConfig(input_file="x", model_dir="y", vocab_file="v",
                             bert_config=kba.BertConfig(**TINY), save_checkpoints_steps=15,
                             log_steps=10)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        run_pretraining(PretrainingRunConfig(
            input_file=str(tmp_path / "missing*.tfrecord"), model_dir=str(tmp_path / "m"),
            vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True,
            bert_config=kba.BertConfig(**TINY)))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
