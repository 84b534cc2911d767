"""Bad data, everywhere (issue 15 §3): every reader on truncated files, wrong
encodings, wrong column counts, labels outside the label set and records made with
another vocabulary gives one error naming the file, the line or record, and the field
or value; through the pipelines that is one line, exit status 2, and nothing written.

Library readers are called directly (fast); a pipeline is started only where its exit
status and output directory are the promise. Data are a few lines written here, and
records made from demo_data/shakespeare.txt (shipped with the project)."""

import dataclasses
import json
import os
import sys

import pytest
import tensorflow as tf

from keras_bert_app.data.classification_data import ColumnSpec, label_ids, read_examples
from keras_bert_app.data.multiple_choice_data import read_multiple_choice
from keras_bert_app.data.ner_data import check_tags, read_ner_file
from keras_bert_app.data.pretraining_data import (PretrainingDataConfig,
                                                  create_pretraining_data, read_documents)
from keras_bert_app.data.pretraining_dataset import (IDS_BEYOND_VOCAB,
                                                     describe_corrupt_record,
                                                     describe_ids_beyond_vocab,
                                                     pretraining_dataset, read_metadata)
from keras_bert_app.data.squad_data import read_squad
from keras_bert_app.text.tokenizer import BertTokenizer
from tests.helpers import SHAKESPEARE_VOCAB, run_pipeline, tiny_config
from tests.reliability.samples import (CLS_JSONL, CONLL, CORPUS, CSV, MC_JSONL,
                                       NER_JSONL, NER_LABELS, SQUAD, SQUAD_JSONL,
                                       SWAG, TSV)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEQ, PREDICTIONS, VOCAB_SIZE = 32, 5, 927  # SHAKESPEARE_VOCAB has 927 pieces

# -- good files, line by line (a bad variant changes one known line) -----------------------

LABELS = ("neg", "pos")
SPEC = ColumnSpec("auto", "sentence", None, "label")


def _tokenizer():
    return BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)


# reader name → (file name, good lines, read the file and check its labels)
READERS = {
    "tsv": ("train.tsv", TSV, lambda p: label_ids(read_examples(p, SPEC), LABELS)),
    "csv": ("train.csv", CSV, lambda p: label_ids(read_examples(p, SPEC), LABELS)),
    "cls_jsonl": ("train.jsonl", CLS_JSONL,
                  lambda p: label_ids(read_examples(p, SPEC), LABELS)),
    "conll": ("train.txt", CONLL,
              lambda p: check_tags(read_ner_file(p), NER_LABELS, "the training file")),
    "ner_jsonl": ("train.jsonl", NER_JSONL,
                  lambda p: check_tags(read_ner_file(p), NER_LABELS, "the training file")),
    "squad": ("train.json", SQUAD, read_squad),
    "squad_jsonl": ("train.jsonl", SQUAD_JSONL, read_squad),
    "mc_jsonl": ("train.jsonl", MC_JSONL, read_multiple_choice),
    "swag": ("train.csv", SWAG, read_multiple_choice),
    "text": ("corpus.txt", CORPUS, lambda p: read_documents([p], _tokenizer())),
}


def latin1(lines, line):
    """The file as latin-1, with an é on 1-based `line` (one byte, not UTF-8)."""
    lines = list(lines)
    lines[line - 1] = lines[line - 1].replace("e", "é", 1)
    return ("\n".join(lines) + "\n").encode("latin-1")


def cut(lines, line, keep):
    """The file cut `keep` characters into 1-based `line` (and nothing after it)."""
    return ("\n".join(lines[:line - 1] + [lines[line - 1][:keep]])).encode("utf-8")


def replaced(lines, line, text):
    lines = list(lines)
    lines[line - 1] = text
    return ("\n".join(lines) + "\n").encode("utf-8")


# (reader, kind, bytes of the bad file, what the one error must say: `{path}` is the file)
CASES = [
    # Wrong encodings: the first bad byte's line. UTF-16's BOM is line 1's first byte.
    *[(r, "latin1", latin1(READERS[r][1], n), "{path}:%d: not UTF-8" % n)
      for r, n in [("tsv", 3), ("csv", 2), ("cls_jsonl", 2), ("conll", 5), ("ner_jsonl", 2),
                   ("squad", 8), ("squad_jsonl", 2), ("mc_jsonl", 3), ("swag", 4),
                   ("text", 4)]],
    *[(r, "utf16", ("\n".join(READERS[r][1]) + "\n").encode("utf-16"), "{path}:1: not UTF-8")
      for r in READERS],
    # UTF-16 without a BOM is valid UTF-8, with a NUL after every ASCII character.
    ("text", "utf16le", ("\n".join(CORPUS) + "\n").encode("utf-16-le"),
     "{path}:1: not UTF-8 text \\(a NUL byte, byte 1 of the file"),
    # Truncated mid-line / mid-JSON / mid-character.
    ("tsv", "truncated", cut(TSV, 4, 6), "{path}:4: 1 field\\(s\\) where the header has 2"),
    ("csv", "truncated", cut(CSV, 3, 9), "{path}:3: malformed CSV record"),
    ("cls_jsonl", "truncated", cut(CLS_JSONL, 3, 20), "{path}:3: not valid JSON"),
    ("conll", "truncated", cut(CONLL, 7, 6), "{path}:7: 1 columns where the file's first "
                                               "word line has 2"),
    ("ner_jsonl", "truncated", cut(NER_JSONL, 2, 30), "{path}:2: not a JSON object"),
    ("squad", "truncated", cut(SQUAD, 12, 15), "{path} is not JSON: .*line 12"),
    ("squad_jsonl", "truncated", cut(SQUAD_JSONL, 3, 40), "{path}, line 3: not JSON"),
    ("mc_jsonl", "truncated", cut(MC_JSONL, 3, 30), "{path}:3: not valid JSON"),
    ("swag", "truncated", cut(SWAG, 4, 9), "{path}:4: 2 fields; the header has 5"),
    ("text", "truncated", "Romeo speaks.\nJuliet sleeps in Vérona".encode()[:-5],
     "{path}:2: not UTF-8"),
    # Wrong column counts.
    ("tsv", "columns", replaced(TSV, 3, "the king\tis dead\tneg"),
     "{path}:3: 3 field\\(s\\) where the header has 2"),
    ("csv", "columns", replaced(CSV, 2, "the king,good,pos"),
     "{path}:2: 3 field\\(s\\) where the header has 2"),
    ("conll", "columns", replaced(CONLL, 6, "in O O"),
     "{path}:6: 3 columns where the file's first word line has 2"),
    ("swag", "columns", replaced(SWAG, 3, "The lord,is,good,1"),
     "{path}:3: 4 fields; the header has 5"),
    ("cls_jsonl", "columns", replaced(CLS_JSONL, 2, json.dumps({"sentence": "x"})),
     "{path}:2: no key 'label'"),
    ("mc_jsonl", "columns", replaced(MC_JSONL, 2, json.dumps({"context": "x", "label": 0})),
     "{path}:2: no key 'choices'"),
    # Labels outside the label set.
    ("tsv", "label", replaced(TSV, 4, "a lord\tneutral"), "{path}:4: unknown label 'neutral'"),
    ("csv", "label", replaced(CSV, 3, "a lord,neutral"), "{path}:3: unknown label 'neutral'"),
    ("cls_jsonl", "label", replaced(CLS_JSONL, 1, json.dumps({"sentence": "x",
                                                              "label": "meh"})),
     "{path}:1: unknown label 'meh'"),
    ("conll", "label", replaced(CONLL, 7, "Verona B-ORG"), "{path}:7: tag 'B-ORG'.* not in "
                                                            "the label set"),
    ("conll", "label", replaced(CONLL, 5, "sleeps S-PER"), "{path}:5: tag 'S-PER'"),
    ("ner_jsonl", "label", replaced(NER_JSONL, 2, json.dumps({"words": ["in", "Rome"],
                                                              "tags": ["O", "B-GPE"]})),
     "{path}:2: tag 'B-GPE'.* not in the label set"),
    ("mc_jsonl", "label", replaced(MC_JSONL, 2, MC_JSONL[1].replace('"label": 1',
                                                                   '"label": 3')),
     "{path}:2: label 3 is out of range for 3 choices"),
    ("swag", "label", replaced(SWAG, 2, "The king,is,dead,alive,2"),
     "{path}:2: label 2 is out of range for 2 choices"),
    ("squad", "label", "\n".join(SQUAD).replace('"answer_start": 15',
                                                '"answer_start": 40').encode(),
     "{path}: question 'q1': answer 'France' is not at answer_start=40"),
]


@pytest.mark.parametrize("reader", sorted(READERS))
def test_the_good_files_read(tmp_path, reader):
    """The control: each bad variant below differs from a file that reads."""
    name, lines, read = READERS[reader]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read(str(path))


@pytest.mark.parametrize("reader, kind, content, message", CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_bad_file_is_one_error_naming_file_line_and_field(tmp_path, reader, kind,
                                                           content, message):
    name, _, read = READERS[reader]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        read(str(path))
    text = str(error.value)
    assert "\n" not in text.strip()
    import re

    assert re.search(message.format(path=re.escape(str(path))), text), text


@pytest.mark.parametrize("reader", sorted(set(READERS) - {"text"}))
def test_utf16_without_a_bom_is_named_as_an_encoding_error(tmp_path, reader):
    name, lines, read = READERS[reader]
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-16-le"))
    with pytest.raises(ValueError, match=f"{path}:1: not UTF-8") as error:
        read(str(path))
    assert "\x00" not in str(error.value)


def test_skip_bad_records_drops_undecodable_corpus_lines_and_counts_them(tmp_path, capsys):
    path = tmp_path / "corpus.txt"
    path.write_bytes(latin1(CORPUS, 2) + latin1(CORPUS, 5))
    skipped = {}
    documents = read_documents([str(path)], _tokenizer(), skip_bad_records=True,
                               skipped=skipped)
    assert skipped == {str(path): 2}  # lines 2 and 10; the others are read
    assert [len(d) for d in documents] == [1, 4, 1]  # the blank lines still divide
    assert f"skip_bad_records: {path}: dropped 2 line(s)" in capsys.readouterr().err


def test_create_pretraining_data_records_the_skipped_lines_in_its_metadata(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(latin1(CORPUS, 4))
    config = dict(input_files=(str(corpus),), output_files=(str(tmp_path / "a.tfrecord"),),
                  vocab_file=SHAKESPEARE_VOCAB, max_seq_length=SEQ,
                  max_predictions_per_seq=PREDICTIONS, dupe_factor=1)
    with pytest.raises(ValueError, match=f"{corpus}:4: not UTF-8"):
        create_pretraining_data(PretrainingDataConfig(**config), verbose=0)
    assert not (tmp_path / "a.tfrecord").exists()
    metadata = create_pretraining_data(PretrainingDataConfig(**config, skip_bad_records=True),
                                       verbose=0)
    assert metadata["skipped_lines"] == 1 and metadata["num_documents"] == 2


def test_skip_bad_records_skips_bad_squad_questions_and_counts_them(tmp_path, capsys):
    path = tmp_path / "train.json"
    path.write_text("\n".join(SQUAD).replace('"answer_start": 15', '"answer_start": 40'))
    skipped = []
    (example,) = read_squad(str(path), skip_bad_records=True, skipped=skipped)
    assert example.qid == "q2" and len(skipped) == 1 and "'q1'" in skipped[0]
    assert f"skip_bad_records: {path}: skipped 1 of 2 questions" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is not JSON"):  # a broken file is never skipped
        path.write_text("\n".join(SQUAD)[:-10])
        read_squad(str(path), skip_bad_records=True)


def _shakespeare_records_config(tmp_path, lines=200):
    corpus = tmp_path / "corpus.txt"
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        corpus.write_text("\n".join(f.read().splitlines()[:lines]) + "\n")
    out = tmp_path / "records"
    return PretrainingDataConfig(
        input_files=(str(corpus),), output_files=(str(out / "a.tfrecord"),
                                                  str(out / "b.tfrecord")),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=SEQ,
        max_predictions_per_seq=PREDICTIONS, dupe_factor=1), out


def _fail_after(monkeypatch, records):
    """`create_pretraining_data` fails while writing record `records + 1`."""
    from keras_bert_app.data import pretraining_records

    calls, ints = [0], pretraining_records._ints

    def failing(values):
        calls[0] += 1
        if calls[0] > 6 * records:  # six int features a record
            raise OSError("injected: the disk is full")
        return ints(values)

    monkeypatch.setattr(pretraining_records, "_ints", failing)


def test_create_pretraining_data_failing_mid_write_leaves_no_records_and_no_metadata(
        tmp_path, monkeypatch):
    config, out = _shakespeare_records_config(tmp_path)
    _fail_after(monkeypatch, 10)
    with pytest.raises(OSError, match="injected"):
        create_pretraining_data(config, verbose=0)
    assert os.listdir(out) == []  # no record file, no .partial, no metadata


def test_a_failed_rerun_leaves_the_earlier_records_and_metadata_as_they_were(
        tmp_path, monkeypatch):
    config, out = _shakespeare_records_config(tmp_path)
    create_pretraining_data(config, verbose=0)
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert sorted(before) == ["a.tfrecord", "b.tfrecord", "pretraining_metadata.json"]
    _fail_after(monkeypatch, 10)
    with pytest.raises(OSError, match="injected"):
        create_pretraining_data(dataclasses.replace(config, random_seed=7), verbose=0)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


# -- pre-training records --------------------------------------------------------------------

@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Records with metadata from 300 lines of Shakespeare, and variants of them."""
    root = tmp_path_factory.mktemp("records")
    with open(os.path.join(REPO, "demo_data", "shakespeare.txt"), encoding="utf-8") as f:
        (root / "corpus.txt").write_text("\n".join(f.read().splitlines()[:300]) + "\n")
    good = root / "good"
    create_pretraining_data(PretrainingDataConfig(
        input_files=(str(root / "corpus.txt"),), output_files=(str(good / "a.tfrecord"),),
        vocab_file=SHAKESPEARE_VOCAB, max_seq_length=SEQ, max_predictions_per_seq=PREDICTIONS,
        dupe_factor=1), verbose=0)
    raw = [r.numpy() for r in tf.data.TFRecordDataset(str(good / "a.tfrecord"))]

    def variant(name, data=None, metadata=None):
        directory = root / name
        directory.mkdir()
        (directory / "a.tfrecord").write_bytes(data if data is not None else
                                               (good / "a.tfrecord").read_bytes())
        (directory / "pretraining_metadata.json").write_text(
            metadata if metadata is not None else
            (good / "pretraining_metadata.json").read_text())
        return directory

    # Records from record 4 on hold a word id of another, larger vocabulary.
    beyond = variant("beyond")
    with tf.io.TFRecordWriter(str(beyond / "a.tfrecord")) as writer:
        for number, record in enumerate(raw):
            if number >= 3:
                example = tf.train.Example.FromString(record)
                example.features.feature["input_ids"].int64_list.value[2] = 5000
                record = example.SerializeToString()
            writer.write(record)
    size = (good / "a.tfrecord").stat().st_size
    metadata = json.loads((good / "pretraining_metadata.json").read_text())
    other = dict(metadata, vocab_sha256="0" * 64)
    return {"root": root, "good": good, "num": len(raw), "beyond": beyond,
            "truncated": variant("truncated", (good / "a.tfrecord").read_bytes()[:size // 2]),
            "other_vocab": variant("other_vocab", metadata=json.dumps(other)),
            "cut_metadata": variant("cut_metadata",
                                    metadata=json.dumps(metadata)[:40]),
            "sha": metadata["vocab_sha256"]}


def _read_all(directory, **kwargs):
    dataset = pretraining_dataset(str(directory / "*.tfrecord"), 8, SEQ, PREDICTIONS,
                                  vocab_size=VOCAB_SIZE, is_training=False, **kwargs)
    return sum(int(features["input_word_ids"].shape[0]) for features, _ in dataset)


def test_good_records_read_whole(records):
    assert _read_all(records["good"], vocab_sha256=records["sha"]) == records["num"]


def test_metadata_of_another_vocabulary_is_refused_naming_the_file_and_field(records):
    with pytest.raises(ValueError, match=r"other_vocab/a\.tfrecord were made with "
                                         r"vocab_sha256='0{64}', but '[0-9a-f]{64}'"):
        _read_all(records["other_vocab"], vocab_sha256=records["sha"])


def test_truncated_metadata_is_refused_naming_it(records):
    with pytest.raises(ValueError, match=r"cut_metadata/pretraining_metadata\.json is not "
                                         r"valid JSON"):
        read_metadata(str(records["cut_metadata"] / "*.tfrecord"))


def test_ids_beyond_the_vocabulary_fail_even_when_metadata_vouches_for_the_records(records):
    """The metadata names the right vocabulary; the bytes of the records do not follow
    it. Before, these batches reached the embedding (an error from inside `fit` on
    CPU, zeros on GPU)."""
    with pytest.raises(tf.errors.InvalidArgumentError, match=IDS_BEYOND_VOCAB):
        _read_all(records["beyond"], vocab_sha256=records["sha"])
    path = str(records["beyond"] / "a.tfrecord")
    assert describe_ids_beyond_vocab([str(records["good"] / "a.tfrecord"), path],
                                     VOCAB_SIZE) == (
        f"{path}: record 4: input_ids[2]=5000 is not below the model vocab_size "
        f"{VOCAB_SIZE}: {IDS_BEYOND_VOCAB}")
    assert describe_ids_beyond_vocab([str(records["good"] / "a.tfrecord")], VOCAB_SIZE) is None


def test_a_truncated_record_file_is_named_with_its_offset_or_skipped(records, capfd):
    path = str(records["truncated"] / "a.tfrecord")
    with pytest.raises(tf.errors.DataLossError):
        _read_all(records["truncated"])
    assert describe_corrupt_record([path]).startswith(f"{path}: truncated record at byte "
                                                      "offset ")
    read = _read_all(records["truncated"], skip_corrupt_records=True)
    assert 0 < read < records["num"]
    assert "skip_corrupt_records:" in capfd.readouterr().err  # tf.print: the fd


def test_run_pretraining_refuses_raw_text_that_is_not_utf8_past_64_kb(tmp_path):
    from keras_bert_app.training.pretraining_inputs import resolve_format

    path = tmp_path / "corpus.txt"
    lines = ["The king is dead, long live the king."] * 3000  # ~114 KB
    lines[2500] = "Long live the kíng."
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(ValueError, match=f"{path}:2501: not UTF-8"):
        resolve_format(str(path), "auto")


# -- the pipelines: one line, exit status 2, nothing written -----------------------------------
#
# Each case: the pipeline, its flags, what the one error line must hold, and the output
# that must not exist. The processes run together (a few seconds each, mostly imports).

def _bert_config(root):
    path = root / "bert_config.json"
    path.write_text(tiny_config(vocab_size=VOCAB_SIZE).to_json_string())
    return f"--bert_config_file={path}"


def _other_vocab(root):
    """The same pieces with two swapped: the same size, other ids, another fingerprint."""
    pieces = open(SHAKESPEARE_VOCAB, encoding="utf-8").read().splitlines()
    pieces[200], pieces[201] = pieces[201], pieces[200]
    (root / "other_vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return str(root / "other_vocab.txt")


PRESET = ("--preset=bert_tiny", f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case")
PRETRAIN = ("--do_lower_case", "--train_batch_size=8", "--num_train_steps=2",
            "--num_warmup_steps=1", "--save_checkpoints_steps=2")


def _pipeline_cases(root, records):
    """name → (pipeline, flags, expected in the error line, output that must not exist
    (None: a run that fails inside training; see `no_model_and_nothing_partial`))."""
    def put(name, data):
        (root / name).write_bytes(data)
        return str(root / name)

    def out(name):
        return root / "out" / name

    tsv = put("utf16.tsv", ("\n".join(TSV) + "\n").encode("utf-16"))
    conll = put("latin1.txt", latin1(CONLL, 5))
    squad = put("latin1.json", latin1(SQUAD, 8))
    choices = put("cut.jsonl", cut(MC_JSONL, 3, 30))
    corpus = put("corpus.txt", latin1(CORPUS, 4))
    config = _bert_config(root)
    pretrain = (config, *PRETRAIN)
    return {
        "classifier": ("run_classifier", (f"--train_file={tsv}", "--do_train", *PRESET,
                                          "--text_a_column=sentence", "--label_column=label",
                                          f"--model_dir={out('classifier')}"),
                       f"{tsv}:1: not UTF-8", out("classifier")),
        "ner": ("run_ner", (f"--train_file={conll}", "--do_train", *PRESET,
                            f"--model_dir={out('ner')}"), f"{conll}:5: not UTF-8", out("ner")),
        # Before: UnicodeDecodeError's own message, naming neither file nor line.
        "squad": ("run_squad", (f"--train_file={squad}", "--do_train", *PRESET,
                                f"--model_dir={out('squad')}"),
                  f"{squad}:8: not UTF-8", out("squad")),
        "multiple_choice": ("run_multiple_choice", (
            f"--train_file={choices}", "--do_train", config,
            f"--vocab_file={SHAKESPEARE_VOCAB}", "--do_lower_case",
            f"--model_dir={out('choice')}"), f"{choices}:3: not valid JSON", out("choice")),
        # Before: the bytes were dropped silently and records written.
        "create_pretraining_data": ("create_pretraining_data", (
            f"--input_file={corpus}", f"--output_file={out('records')}/a.tfrecord",
            f"--vocab_file={SHAKESPEARE_VOCAB}", "--max_seq_length=32",
            "--max_predictions_per_seq=5", "--dupe_factor=1"),
            f"{corpus}:4: not UTF-8", out("records")),
        "other_vocab": ("run_pretraining", (
            f"--input_file={records['good']}/*.tfrecord", *pretrain,
            f"--vocab_file={_other_vocab(root)}", f"--model_dir={out('other_vocab')}"),
            f"{records['good'] / 'a.tfrecord'} were made with vocab_sha256=",
            out("other_vocab")),
        # Before: InvalidArgumentError from the embedding, a traceback, exit status 1.
        "beyond": ("run_pretraining", (
            f"--input_file={records['beyond']}/*.tfrecord", *pretrain,
            f"--vocab_file={SHAKESPEARE_VOCAB}", f"--model_dir={out('beyond')}"),
            f"{records['beyond'] / 'a.tfrecord'}: record 4: input_ids[2]=5000 is not below "
            f"the model vocab_size {VOCAB_SIZE}: {IDS_BEYOND_VOCAB}", None),
        "truncated": ("run_pretraining", (
            f"--input_file={records['truncated']}/*.tfrecord", *pretrain,
            f"--vocab_file={SHAKESPEARE_VOCAB}", f"--model_dir={out('truncated')}"),
            f"{records['truncated'] / 'a.tfrecord'}: truncated record at byte offset", None),
    }


@pytest.fixture(scope="module")
def pipeline_runs(records, tmp_path_factory):
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("pipelines")
    cases = _pipeline_cases(root, records)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: pool.submit(run_pipeline, pipeline, *flags, check=False)
                   for name, (pipeline, flags, _, _) in cases.items()}
        results = {name: future.result() for name, future in results.items()}
    return {name: (cases[name], results[name]) for name in cases}


def one_line_error(result, pipeline):
    lines = [line for line in result.stderr.splitlines()
             if line.startswith(f"pipelines.{pipeline}: error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


def no_model_and_nothing_partial(model_dir):
    """A run that failed on its data inside training leaves no model, no checkpoint
    and no half-written file."""
    written = [os.path.join(d, f) for d, _, files in os.walk(model_dir) for f in files]
    assert not any(f.endswith(("model.weights.h5", ".partial")) or "ckpt-" in f
                   for f in written), written
    for path in written:
        if path.endswith(".json"):
            json.loads(open(path, encoding="utf-8").read())


@pytest.mark.parametrize("case", ["classifier", "ner", "squad", "multiple_choice",
                                  "create_pretraining_data", "other_vocab", "beyond",
                                  "truncated"])
def test_a_pipeline_reports_bad_data_in_one_line_with_exit_status_2(pipeline_runs, case):
    (pipeline, flags, expected, output), result = pipeline_runs[case]
    error = one_line_error(result, pipeline)
    assert expected in error, error
    if output is not None:
        assert not os.path.exists(output), os.listdir(output)
    else:
        model_dir = next(f.split("=", 1)[1] for f in flags if f.startswith("--model_dir="))
        no_model_and_nothing_partial(model_dir)


def test_records_beyond_the_vocabulary_are_named_by_record_number(pipeline_runs, records):
    (pipeline, _, _, _), result = pipeline_runs["beyond"]
    error = one_line_error(result, pipeline)
    assert f"{records['beyond'] / 'a.tfrecord'}: record 4: input_ids[2]=5000" in error


@pytest.mark.parametrize("case", ["truncated", "beyond"])
def test_a_pretraining_run_that_fails_on_its_data_leaves_no_model_dir(pipeline_runs, case):
    (_, flags, _, _), _ = pipeline_runs[case]
    model_dir = next(f.split("=", 1)[1] for f in flags if f.startswith("--model_dir="))
    assert not os.path.exists(model_dir), os.listdir(model_dir)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
