"""create_pretraining_data_beam: the same records for any number of workers,
statistically the single-process tool's records, read by the same reader; bad
shards counted and named, never a crash."""

import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("apache_beam", reason="apache-beam is the optional extra "
                    "(pip install -e '.[beam]'; scripts/install.sh installs it)")

from keras_bert_app import names  # noqa: E402
from keras_bert_app.data import (PretrainingDataConfig, create_pretraining_data,  # noqa: E402
                                 pretraining_dataset)
from keras_bert_app.data.input_format import RECORD_FEATURES  # noqa: E402
from keras_bert_app.data.pretraining_beam import relative_names  # noqa: E402
from keras_bert_app.data.pretraining_beam_run import (check_outputs, check_paths,  # noqa: E402
                                                      run_pretraining_data_pipeline,
                                                      shard_files)
from keras_bert_app.text.vocab import load_vocab  # noqa: E402
from tests.helpers import (SHAKESPEARE_VOCAB, require_minilm,  # noqa: E402
                           require_shared_data, run_pipeline, write_shakespeare_corpus)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASK = 103
SEQ, PREDICTIONS = 128, 20


@pytest.fixture(scope="module")
def vocab_file():
    return os.path.join(require_minilm(), "vocab.txt")


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory):
    """The first 300 KB of the shared corpus: ~2,100 documents (speeches)."""
    with open(os.path.join(require_shared_data(), "corpus", "tinyshakespeare.txt"),
              "rb") as f:
        data = f.read(300_000)
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_bytes(data[:data.rindex(b"\n\n")] + b"\n")
    return path


def config_for(inputs, outputs, vocab_file, **overrides):
    fields = dict(input_files=tuple(str(p) for p in inputs), output_files=tuple(outputs),
                  vocab_file=vocab_file, dupe_factor=2, skip_bad_records=True)
    fields.update(overrides)
    return PretrainingDataConfig(**fields)


def load(files):
    spec = {name: tf.io.FixedLenFeature(
        [SEQ if name.startswith(("input", "segment")) else
         1 if name == names.NEXT_SENTENCE_LABELS else PREDICTIONS],
        tf.float32 if name == names.MASKED_LM_WEIGHTS else tf.int64)
        for name in RECORD_FEATURES}
    batches = [tf.io.parse_example(b, spec) for b in tf.data.TFRecordDataset(
        list(map(str, files))).batch(4096)]
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in spec}


def statistics(records):
    lengths = records[names.RECORD_INPUT_MASK].sum(1)
    weights = records[names.MASKED_LM_WEIGHTS] > 0
    masked = weights.sum(1)
    at = np.take_along_axis(records[names.RECORD_INPUT_IDS],
                            records[names.MASKED_LM_POSITIONS], 1)[weights]
    targets = records[names.MASKED_LM_IDS][weights]
    expected = np.minimum(PREDICTIONS, np.maximum(1, [round(n * 0.15) for n in lengths]))
    return dict(instances=len(lengths), mean_length=lengths.mean(),
                full_length=(lengths == SEQ).mean(),
                quartiles=np.percentile(lengths, [25, 50, 75]),
                masked_count_formula=(masked == expected).mean(),
                mask_share=(at == MASK).mean(), kept_share=(at == targets).mean(),
                random_b_share=records[names.NEXT_SENTENCE_LABELS].mean())


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory, shakespeare, vocab_file):
    out = tmp_path_factory.mktemp("beam")
    config = config_for([shakespeare], shard_files(str(out / "train"), 4), vocab_file)
    metadata, counters = run_pretraining_data_pipeline(config, documents_per_pool=300,
                                                       verbose=0)
    return config, metadata, counters


def test_statistics_match_the_single_process_tool(tmp_path, shakespeare, vocab_file,
                                                  beam_run):
    config, metadata, counters = beam_run
    single = config_for([shakespeare], [str(tmp_path / "a.tfrecord")], vocab_file,
                        skip_bad_records=False)
    single_metadata = create_pretraining_data(single, verbose=0)
    # The same description apart from what each run made and where it wrote it.
    made = ("num_instances", "files", "skipped_lines")
    assert {k: v for k, v in metadata.items() if k not in made} == \
        {k: v for k, v in single_metadata.items() if k not in made}
    ours, theirs = statistics(load(config.output_files)), statistics(load(
        single.output_files))
    # Pools of ~300 documents (7 of them) instead of one draw over the corpus.
    assert counters["pools"] == 7
    assert counters["documents"] == metadata["num_documents"] == \
        single_metadata["num_documents"] > 2000
    assert abs(ours["instances"] / theirs["instances"] - 1) < 0.03
    assert ours["masked_count_formula"] == theirs["masked_count_formula"] == 1.0
    for key, tolerance in [("mask_share", 0.015), ("kept_share", 0.01),
                           ("random_b_share", 0.03), ("full_length", 0.02)]:
        assert abs(ours[key] - theirs[key]) < tolerance, (key, ours[key], theirs[key])
    assert 0.78 < ours["mask_share"] < 0.82 and 0.08 < ours["kept_share"] < 0.12
    assert abs(ours["mean_length"] / theirs["mean_length"] - 1) < 0.03
    np.testing.assert_allclose(ours["quartiles"], theirs["quartiles"], atol=6)


def test_metadata_and_records_are_read_like_the_single_process_tools(beam_run,
                                                                     vocab_file):
    config, metadata, counters = beam_run
    directory = os.path.dirname(config.output_files[0])
    with open(os.path.join(directory, names.PRETRAINING_METADATA_FILE)) as f:
        assert json.load(f) == metadata
    assert metadata["files"] == [f"train-0000{i}-of-00004" for i in range(4)]
    assert metadata["num_instances"] == counters["instances"] == len(
        load(config.output_files)[names.NEXT_SENTENCE_LABELS])
    assert metadata["skipped_lines"] == 0 and "input_problems" not in metadata
    vocab = load_vocab(vocab_file)
    dataset = pretraining_dataset(os.path.join(directory, "train-*"), batch_size=8,
                                  max_seq_length=SEQ, max_predictions_per_seq=PREDICTIONS,
                                  vocab_size=len(vocab), vocab_sha256=metadata["vocab_sha256"],
                                  is_training=False)
    features, labels = next(iter(dataset))
    assert features[names.INPUT_WORD_IDS].shape == (8, SEQ)
    assert labels[names.MASKED_LM_IDS].shape == (8, PREDICTIONS)
    with pytest.raises(ValueError, match="max_seq_length=128, but 64"):
        pretraining_dataset(os.path.join(directory, "train-*"), batch_size=8,
                            max_seq_length=64, max_predictions_per_seq=PREDICTIONS)


def beam_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "pipelines.create_pretraining_data_beam",
                           *args], cwd=REPO, capture_output=True, text=True, **kwargs)


def test_the_same_bytes_for_one_and_two_worker_processes(tmp_path, vocab_file):
    """Per-document random streams and hashed instance order: the runner's split of
    the work cannot change a record."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(os.path.join(require_shared_data(), "corpus", "tinyshakespeare.txt"),
              "rb") as f:
        speeches = f.read(90_000).split(b"\n\n")[:-1]
    for part in range(3):
        (corpus / f"part-{part}.txt").write_bytes(b"\n\n".join(speeches[part::3]) + b"\n")
    wiki = os.path.join(require_shared_data(), "wiki", "wiki_00.txt")
    (corpus / "wiki_00").write_bytes(open(wiki, "rb").read())
    moved = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(corpus, moved)
    # The moved copy, listed in reverse: document keys are file names relative to
    # the corpus folder, so neither changes a record.
    runs = {"one worker": [f"--input_file={corpus}/*"],
            "two worker processes": [f"--input_file={corpus}/*", "--direct_num_workers=2"],
            "moved, listed in reverse": [
                "--input_file=" + ",".join(sorted(map(str, moved.iterdir()), reverse=True))]}
    outputs = {}
    for number, (run, flags) in enumerate(runs.items()):
        prefix = tmp_path / f"out{number}" / "train"
        done = beam_cli(flags + [f"--output_file={prefix}", "--num_output_shards=3",
                                 f"--vocab_file={vocab_file}", "--dupe_factor=2",
                                 "--documents_per_pool=100"], timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Counters: " in done.stdout and "files=4" in done.stdout
        outputs[run] = {p: open(os.path.join(prefix.parent, p), "rb").read()
                        for p in sorted(os.listdir(prefix.parent))}
    first = outputs["one worker"]
    assert list(first) == ["pretraining_metadata.json"] + [
        f"train-0000{i}-of-00003" for i in range(3)]
    assert all(first.values())
    for run in runs:
        assert outputs[run] == first, run


def test_bad_shards_are_counted_and_named_and_the_good_ones_used(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("A first sentence here.\nAnd a second one.\n\n"
                                      "Another document.\nWith two lines.\n")
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "latin1.txt").write_bytes("Caf\xe9 au lait.\n".encode("latin-1")
                                        + b"Plain text line.\nMore plain text.\n")
    (corpus / "utf16.txt").write_bytes("Some text.\nMore.\n".encode("utf-16"))
    (corpus / "zipped.txt.gz").write_bytes(gzip.compress(b"Zipped text.\nIt reads.\n"))
    corrupt = bytearray(gzip.compress(b"Lost text.\n" * 2000))
    corrupt[40:60] = b"\xff" * 20
    (corpus / "corrupt.txt.gz").write_bytes(bytes(corrupt))
    # Cut short, as by an interrupted copy: Beam's own reader would stop at the cut
    # without a word.
    whole = gzip.compress(b"".join(b"Document %d is here.\n\n" % i for i in range(5000)))
    (corpus / "cut.txt.gz").write_bytes(whole[:len(whole) // 2])
    (corpus / "wiki_00").write_text('<doc id="1" title="T">\nT\nWiki text here.\n</doc>\n'
                                    "stray text\n")
    config = config_for(sorted(corpus.iterdir()), shard_files(str(tmp_path / "o" / "t"), 2),
                        vocab_file)
    metadata, counters = run_pretraining_data_pipeline(config, verbose=0)
    assert counters["files"] == 8 and counters["empty_files"] == 1
    assert counters["files_with_bad_lines"] == 2 and counters["unreadable_files"] == 2
    assert counters["lines_outside_doc"] == 1
    # good.txt 2, latin1.txt 1, zipped.txt.gz 1, wiki_00 1, and the documents of
    # cut.txt.gz before its cut (kept: a retry reads the same ones).
    assert metadata["num_documents"] == counters["documents"]
    assert 5 + 1000 < counters["documents"] < 5 + 5000
    assert metadata["skipped_lines"] == 1 + 3  # the lines that are not UTF-8
    problems = {(os.path.basename(p["file"]), p["problem"].split(" after")[0]): p
                for p in metadata["input_problems"]}
    assert set(problems) == {("empty.txt", "empty file"),
                             ("latin1.txt", "lines that are not UTF-8 dropped"),
                             ("utf16.txt", "lines that are not UTF-8 dropped"),
                             ("corrupt.txt.gz", "unreadable"),
                             ("cut.txt.gz", "unreadable"),
                             ("wiki_00", "text outside <doc> … </doc> dropped")}
    assert problems[("latin1.txt", "lines that are not UTF-8 dropped")]["first"] \
        .endswith("latin1.txt:1: not UTF-8 (invalid continuation byte, byte 3 of the "
                  "file); re-encode the file as UTF-8 to use such lines; they were "
                  "dropped.")
    assert "error" in problems[("corrupt.txt.gz", "unreadable")]["first"].lower()
    assert problems[("cut.txt.gz", "unreadable")]["first"].startswith("EOFError")


def test_no_document_at_all_is_an_error_and_leaves_no_metadata(tmp_path, vocab_file):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "utf16.txt").write_bytes("Some text.\n".encode("utf-16"))
    prefix = tmp_path / "o" / "t"
    config = config_for([tmp_path / "empty.txt", tmp_path / "utf16.txt"],
                        shard_files(str(prefix), 2), vocab_file)
    with pytest.raises(ValueError, match=r"No document in the 2 input file\(s\)"):
        run_pretraining_data_pipeline(config, verbose=0)
    assert not os.path.exists(prefix.parent / names.PRETRAINING_METADATA_FILE)


def test_shards_of_another_count_under_the_prefix_are_refused(tmp_path):
    (tmp_path / "train-00000-of-00002").write_bytes(b"")
    check_outputs(str(tmp_path / "train"), 2)  # the same layout is overwritten
    with pytest.raises(ValueError, match=r"train-00000-of-00002 \(and 0 more\) are shards "
                                         "of an earlier run"):
        check_outputs(str(tmp_path / "train"), 4)


def test_document_keys_survive_a_move_and_tell_equal_basenames_apart():
    assert relative_names(["/a/x/AA/wiki_00", "/a/x/AB/wiki_00"]) == [
        "AA/wiki_00", "AB/wiki_00"]
    assert relative_names(["/b/AA/wiki_00", "/b/AB/wiki_00"]) == [
        "AA/wiki_00", "AB/wiki_00"]
    assert relative_names(["gs://bucket/c/one.txt"]) == ["one.txt"]


@pytest.mark.parametrize("flag,message", [
    ("--direct_num_worker=2", "unknown flag(s) --direct_num_worker"),
    ("--num_workers=2", "--num_workers is a cluster runner's worker count; on the "
                        "DirectRunner give --direct_num_workers")])
def test_a_flag_that_would_be_ignored_is_an_error(tmp_path, flag, message):
    done = beam_cli(["--input_file=x", f"--output_file={tmp_path}/t", "--vocab_file=v",
                     flag], timeout=300)
    assert done.returncode == 2
    assert message in done.stderr


def test_paths_the_run_cannot_use_are_refused_before_it_starts(vocab_file):
    config = config_for(["/data/a.txt"], shard_files("hdfs://nn/out/t", 2), vocab_file)
    with pytest.raises(ValueError, match="written with tf.io.gfile, which writes local "
                                         "paths and gs://"):
        check_paths(config, None)
    config = config_for(["gs://b/a.txt"], shard_files("/local/out/t", 2), vocab_file)
    with pytest.raises(ValueError, match="/local/out/t-00000-of-00002 is a local path, "
                                         "which Dataflow's workers cannot see"):
        check_paths(config, "DataflowRunner")
    check_paths(config, None)  # the DirectRunner writes where this machine can


def test_run_pretraining_trains_on_the_beam_records(tmp_path):
    corpus = write_shakespeare_corpus(str(tmp_path / "corpus.txt"), num_lines=1500,
                                      document_lines=50)
    prefix = tmp_path / "records" / "train"
    config = config_for([corpus], shard_files(str(prefix), 2), SHAKESPEARE_VOCAB,
                        max_seq_length=64, max_predictions_per_seq=10)
    run_pretraining_data_pipeline(config, documents_per_pool=10, verbose=0)
    (tmp_path / "bert_config.json").write_text(json.dumps(dict(
        vocab_size=927, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)))
    result = run_pipeline(
        "run_pretraining", f"--input_file={prefix}-*",
        f"--bert_config_file={tmp_path}/bert_config.json",
        f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=true",
        f"--model_dir={tmp_path}/run", "--train_batch_size=16", "--num_train_steps=4",
        "--num_warmup_steps=1", "--save_checkpoints_steps=4", "--log_steps=2")
    assert "steps 0 → 4" in result.stdout
    assert os.path.exists(tmp_path / "run" / "model.weights.h5")
    # The settings are checked as for the single-process tool's records.
    refused = run_pipeline(
        "run_pretraining", f"--input_file={prefix}-*",
        f"--bert_config_file={tmp_path}/bert_config.json",
        f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case=false",
        f"--model_dir={tmp_path}/run2", "--num_train_steps=1", "--num_warmup_steps=0",
        check=False)
    assert refused.returncode == 2 and "do_lower_case" in refused.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
