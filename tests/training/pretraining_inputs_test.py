"""What `run_pretraining` reads: the input format decided from the files' content
(Google's metadata-less records included), corrupt shards named in one line or
skipped, the input position kept across a resume, held-out evaluation, and the
defaults every worker shares (seed, jit_compile)."""

import glob
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import keras_bert_app as kba
from keras_bert_app.data import PretrainingDataConfig, create_pretraining_data
from keras_bert_app.data.input_format import detect_format, detect_input_format
from keras_bert_app.training.pretraining import PretrainingRunConfig, run_pretraining
from tests.helpers import SHAKESPEARE_VOCAB, run_pipeline, write_shakespeare_corpus

# Dropout on: a resumed run must also continue the dropout stream.
TINY = dict(vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32)


def pipeline(name, *flags):
    return run_pipeline(name, *flags, check=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inputs")
    corpus = write_shakespeare_corpus(str(directory / "corpus.txt"), num_lines=800,
                                      document_lines=40)
    ours = directory / "ours"
    create_pretraining_data(PretrainingDataConfig(
        input_files=(corpus,), output_files=(str(ours / "a.tfrecord"),
                                             str(ours / "b.tfrecord")),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=32, max_predictions_per_seq=5,
        dupe_factor=1), verbose=0)
    # Google's create_pretraining_data writes the same features and no metadata.
    google = directory / "google"
    shutil.copytree(ours, google)
    os.remove(google / kba.names.PRETRAINING_METADATA_FILE)
    return {"dir": directory, "corpus": corpus, "ours": str(ours / "*.tfrecord"),
            "google": str(google / "*.tfrecord"), "google_dir": google}


def config(data, model_dir, **overrides):
    values = dict(input_file=data["google"], model_dir=str(model_dir),
                  bert_config=kba.BertConfig(**TINY), vocab_file=SHAKESPEARE_VOCAB,
                  do_lower_case=True, train_batch_size=8, num_train_steps=4,
                  num_warmup_steps=1, learning_rate=1e-3, save_checkpoints_steps=2,
                  log_steps=2, max_seq_length=32, max_predictions_per_seq=5, verbose=0)
    values.update(overrides)
    return PretrainingRunConfig(**values)


def weights_of(path):
    with h5py.File(path) as f:
        out = {}
        f.visititems(lambda name, item: out.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return out


# -- the format, from content ----------------------------------------------------------

def test_format_is_decided_from_content_not_from_the_metadata_file(data, tmp_path):
    google = sorted(glob.glob(data["google"]))
    assert detect_input_format(google) == "tfrecord"  # no metadata beside them
    assert detect_format(data["corpus"]) == "text"
    # A text file beside metadata is still text.
    shutil.copy(data["corpus"], data["google_dir"] / "notes.txt")
    try:
        assert detect_format(str(data["google_dir"] / "notes.txt")) == "text"
    finally:
        os.remove(data["google_dir"] / "notes.txt")
    with pytest.raises(ValueError, match="mixes TFRecords"):
        detect_input_format(google + [data["corpus"]])


def test_files_that_are_neither_records_nor_text_are_named(tmp_path):
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(ValueError, match=f"{binary} is neither TFRecords"):
        detect_format(str(binary))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match="nor UTF-8 text"):
        detect_format(str(latin1))
    import tensorflow as tf

    other = tmp_path / "other.tfrecord"
    with tf.io.TFRecordWriter(str(other)) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))})
        ).SerializeToString())
    with pytest.raises(ValueError, match="without the pre-training features"):
        detect_format(str(other))


def test_edge_files_empty_shards_compressed_records_and_a_corrupt_first_record(
        data, tmp_path):
    import gzip

    from keras_bert_app.training.pretraining_inputs import input_files

    # An empty shard (create_pretraining_data writes one when instances run out)
    # takes no part; all-empty input is an error.
    empty = data["google_dir"] / "c.tfrecord"
    empty.write_bytes(b"")
    try:
        assert detect_input_format(sorted(glob.glob(data["google"]))) == "tfrecord"
    finally:
        os.remove(empty)
    (tmp_path / "e1.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="are all empty"):
        detect_input_format([str(tmp_path / "e1.txt")])
    # Compressed records are named as such, not read as text.
    compressed = tmp_path / "a.tfrecord.gz"
    compressed.write_bytes(gzip.compress((data["google_dir"] / "a.tfrecord").read_bytes()))
    with pytest.raises(ValueError, match="compressed TFRecords are not read"):
        detect_format(str(compressed))
    # A file whose first record is corrupt is still TFRecords (the reader names it).
    broken = tmp_path / "broken.tfrecord"
    raw = bytearray((data["google_dir"] / "a.tfrecord").read_bytes())
    raw[20] ^= 0xFF  # inside the first record's data
    broken.write_bytes(bytes(raw))
    assert detect_format(str(broken)) == "tfrecord"
    # A `dir/*` glob also matches the metadata file: it is not input.
    ours_dir = os.path.dirname(data["ours"])
    assert sorted(os.path.basename(f) for f in input_files(ours_dir + "/*")) == [
        "a.tfrecord", "b.tfrecord"]


def test_settings_that_cannot_work_are_refused_before_anything_runs(data, tmp_path):
    from keras_bert_app.data import pretraining_dataset

    with pytest.raises(ValueError, match="skip_batches needs a seed"):
        pretraining_dataset(data["ours"], 8, 32, 5, skip_batches=3, seed=None)
    with pytest.raises(ValueError, match="num_train_steps=5 must be a multiple of "
                                         "gradient_accumulation_steps=2"):
        config(data, tmp_path / "a", num_train_steps=5, gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="there is no trained model to evaluate"):
        run_pretraining(config(data, tmp_path / "b", do_train=False, do_eval=True))


def test_a_later_record_of_other_lengths_is_one_line(data, tmp_path):
    import tensorflow as tf

    mixed = tmp_path / "mixed.tfrecord"
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(data["google_dir"] /
                                                              "a.tfrecord")).take(40)]
    short = tf.train.Example.FromString(records[-1])
    ids = short.features.feature["input_ids"].int64_list.value
    del ids[16:]  # a record of seq 16 among seq-32 ones
    with tf.io.TFRecordWriter(str(mixed)) as writer:
        for record in records[:-1] + [short.SerializeToString()]:
            writer.write(record)
    with pytest.raises(ValueError, match="mixed.tfrecord: a record's input_ids has 16 "
                                         "values, the run reads 32"):
        run_pretraining(config(data, tmp_path / "run", input_file=str(mixed),
                               train_batch_size=8, num_train_steps=8,
                               save_checkpoints_steps=8, log_steps=8))


def test_google_records_need_their_lengths_and_must_match_them(data, tmp_path):
    with pytest.raises(ValueError, match="without pretraining_metadata.json.*give "
                                         "max_seq_length and max_predictions_per_seq"):
        run_pretraining(config(data, tmp_path / "a", max_seq_length=None,
                               max_predictions_per_seq=None))
    with pytest.raises(ValueError, match=r"a\.tfrecord: its records have .*'input_ids': 32"):
        run_pretraining(config(data, tmp_path / "b", max_seq_length=64))
    with pytest.raises(ValueError, match="input_format='text', but .* holds tfrecord"):
        run_pretraining(config(data, tmp_path / "c", input_format="text"))
    # Records with metadata: a given length must agree with it.
    with pytest.raises(ValueError, match="max_seq_length=64, but the records"):
        run_pretraining(config(data, tmp_path / "d", input_file=data["ours"],
                               max_seq_length=64))


def test_google_records_train_and_ids_beyond_the_vocabulary_are_refused(data, tmp_path):
    run_pretraining(config(data, tmp_path / "run"))
    run = json.loads((tmp_path / "run" / "pretraining_run.json").read_text())
    assert run["data"]["input"] == "tfrecord" and run["data"]["metadata"] is False
    assert run["data"]["max_seq_length"] == 32
    assert kba.load_pretrainer(tmp_path / "run").next_sentence_prediction

    small = dict(TINY, vocab_size=500)  # the records hold ids up to 926
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(open(SHAKESPEARE_VOCAB).read().splitlines()[:500]) + "\n")
    # The first record holding one, named by file, record number, field and value.
    with pytest.raises(ValueError, match=r"^.*/a\.tfrecord: record 1: input_ids\[\d+\]=\d+ is "
                                         "not below the model vocab_size 500: made with "
                                         "another vocabulary$"):
        run_pretraining(config(data, tmp_path / "small", bert_config=kba.BertConfig(**small),
                               vocab_file=str(vocab)))


def test_the_pipeline_refuses_google_records_without_lengths_in_one_line(data, tmp_path):
    result = pipeline("run_pretraining", f"--input_file={data['google']}",
                      "--preset=bert_tiny", f"--vocab_file={SHAKESPEARE_VOCAB}",
                      "--do_lower_case=true", f"--model_dir={tmp_path / 'run'}",
                      "--num_train_steps=2", "--num_warmup_steps=0",
                      "--save_checkpoints_steps=2")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error:" in result.stderr and "--max_seq_length" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_init_checkpoint_must_match_the_vocabulary_and_give_every_encoder_weight(
        data, tmp_path):
    """--init_checkpoint is held to convert_checkpoint's rules: the run's vocabulary is
    the checkpoint's own, and a source that loads no encoder weight is refused before
    a step is trained."""
    from tests.checkpoints.checkpoint_files import write_tiny_hf_dir
    from tests.helpers import tiny_config

    hf = tmp_path / "hf"
    write_tiny_hf_dir(hf, key_prefix="model.")  # keys under an unexpected prefix
    base = dict(input_file=data["corpus"], bert_config=tiny_config(),
                init_checkpoint=str(hf), max_seq_length=32, max_predictions_per_seq=5,
                num_train_steps=2,
                save_checkpoints_steps=2)
    with pytest.raises(ValueError, match="vocab"):
        run_pretraining(config(data, tmp_path / "other_vocab", **base))
    with pytest.raises(ValueError, match="lacks 39 of the encoder's 39 weights"):
        run_pretraining(config(data, tmp_path / "prefixed", vocab_file=str(hf / "vocab.txt"),
                               **base))
    assert not (tmp_path / "prefixed" / "checkpoints").exists()


# -- corrupt shards ----------------------------------------------------------------------

def test_a_corrupt_shard_is_one_line_or_skipped_and_logged(data, tmp_path):
    shard_dir = tmp_path / "records"
    shutil.copytree(data["google_dir"], shard_dir)
    bad = shard_dir / "b.tfrecord"
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a byte inside some record's data: its CRC fails
    bad.write_bytes(bytes(raw))
    flags = (f"--input_file={shard_dir}/*.tfrecord", f"--vocab_file={SHAKESPEARE_VOCAB}",
             "--preset=bert_tiny", "--do_lower_case=true", "--max_seq_length=32",
             "--max_predictions_per_seq=5", "--train_batch_size=8",
             "--num_train_steps=40", "--num_warmup_steps=1", "--save_checkpoints_steps=40")
    result = pipeline("run_pretraining", *flags, f"--model_dir={tmp_path / 'strict'}")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines()
             if line.startswith("pipelines.run_pretraining: error:")]
    assert len(error) == 1 and f"{bad}: corrupted record at byte offset" in error[0]
    assert "--skip_corrupt_records" in error[0] and "Traceback" not in result.stderr

    result = pipeline("run_pretraining", *flags, "--skip_corrupt_records",
                      f"--model_dir={tmp_path / 'skipping'}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines()
                if "skip_corrupt_records:" in line]
    assert warnings and str(bad) in warnings[0] and "byte offset" in warnings[0]
    assert (tmp_path / "skipping" / "model.weights.h5").exists()


# -- resume and evaluation ---------------------------------------------------------------

def test_resume_continues_the_input_stream_where_it_stopped(data, tmp_path):
    """A run stopped after its step-4 checkpoint and started again ends with the
    weights of an uninterrupted run: the 4 consumed batches are not seen again."""
    whole = tmp_path / "whole"
    run_pretraining(config(data, whole, num_train_steps=8, save_checkpoints_steps=4,
                           log_steps=4, keep_checkpoint_max=5))
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(whole / "checkpoints" / "ckpt-4.weights.h5", resumed / "checkpoints")
    shutil.copy(whole / "pretraining_run.json", resumed)
    run_pretraining(config(data, resumed, num_train_steps=8, save_checkpoints_steps=4,
                           log_steps=4))
    expected, actual = weights_of(whole / "model.weights.h5"), \
        weights_of(resumed / "model.weights.h5")
    assert sorted(expected) == sorted(actual)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5, err_msg=name)
    # Changing what the checkpointed step stands for is refused.
    with pytest.raises(ValueError, match="other settings seed=12345 \\(now 5\\)"):
        run_pretraining(config(data, resumed, num_train_steps=12, seed=5,
                               save_checkpoints_steps=4, log_steps=4))


def test_evaluation_reports_held_out_accuracy_to_json_and_tensorboard(data, tmp_path):
    model_dir = tmp_path / "run"
    run_pretraining(config(data, model_dir, input_file=data["ours"], do_eval=True,
                           eval_input_file=data["google"], eval_batch_size=4,
                           max_eval_steps=3))
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["global_step"] == 4 and results["eval_input_file"] == data["google"]
    for key in ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
                "next_sentence_loss", "loss"):
        assert np.isfinite(results[key]), key
    assert 0 <= results["masked_lm_accuracy"] <= 1
    # An untrained-ish model: the MLM loss is near ln(vocab), not pulled down.
    assert results["masked_lm_loss"] > 5.0
    np.testing.assert_allclose(results["loss"], results["masked_lm_loss"] +
                               results["next_sentence_loss"], rtol=0.05)
    events = glob.glob(str(model_dir / "logs" / "eval" / "events.out.tfevents.*"))
    accumulator = event_accumulator.EventAccumulator(events[0])
    accumulator.Reload()
    assert {"masked_lm_accuracy", "next_sentence_accuracy"} <= set(
        accumulator.Tags()["tensors"])
    assert [e.step for e in accumulator.Tensors("masked_lm_accuracy")] == [4]

    # Evaluation alone, of the model as the run left it: the same figures.
    again = run_pretraining(config(data, model_dir, input_file=data["ours"],
                                   do_train=False, do_eval=True,
                                   eval_input_file=data["google"], eval_batch_size=4,
                                   max_eval_steps=3))
    assert again is not None
    second = json.loads((model_dir / "eval_results.json").read_text())
    assert second["masked_lm_accuracy"] == pytest.approx(results["masked_lm_accuracy"])
    assert second["masked_lm_loss"] == pytest.approx(results["masked_lm_loss"], rel=1e-5)


# -- shared defaults ---------------------------------------------------------------------

def test_runs_start_from_the_same_weights_by_default(data, tmp_path):
    """Two processes without --seed (as two workers would be) start identical: with a
    zero learning rate the saved model is the initial one."""
    outputs = []
    for name in ("first", "second"):
        result = pipeline("run_pretraining", f"--input_file={data['ours']}",
                          f"--bert_config_file={_write_config(tmp_path)}",
                          f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=true",
                          f"--model_dir={tmp_path / name}", "--train_batch_size=8",
                          "--num_train_steps=1", "--num_warmup_steps=0",
                          "--learning_rate=0", "--save_checkpoints_steps=1")
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(weights_of(tmp_path / name / "model.weights.h5"))
        run = json.loads((tmp_path / name / "pretraining_run.json").read_text())
        assert run["seed"] == 12345 and run["jit_compile"] == "auto"
    for name in outputs[0]:
        np.testing.assert_array_equal(outputs[0][name], outputs[1][name], err_msg=name)


def test_jit_compile_defaults_to_keras_auto():
    assert PretrainingRunConfig(input_file="x", model_dir="y", vocab_file="v",
                                bert_config=kba.BertConfig(**TINY)).jit_compile == "auto"
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        PretrainingRunConfig(input_file="x", model_dir="y", vocab_file="v",
                             bert_config=kba.BertConfig(**TINY), jit_compile="yes")


def _write_config(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(TINY))
    return str(path)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
