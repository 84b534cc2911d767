"""`skip_bad_records` (issue 15 §3): a training file's bad records are dropped, counted
and logged ("skipped N of M rows of FILE; the first: FILE:LINE: reason") and recorded in
the run file; the default is the one-line error; evaluation and prediction files are
never skipped; a file whose every record is bad is an error all the same.

Readers are called directly (fast); two tiny training runs in-process show what is
trained on and recorded, and one pipeline run each shows the flags wired. The bad-file
variants are the good files of `bad_data_test`'s, with known lines changed."""

import json
import os
import re
import sys

import pytest

from keras_bert_app import names
from keras_bert_app.data.classification_data import ColumnSpec, read_examples
from keras_bert_app.data.multiple_choice_data import read_multiple_choice
from keras_bert_app.data.ner_data import check_tags, read_ner_file
from keras_bert_app.data.text_files import read_text
from keras_bert_app.training import classification, multiple_choice, ner, squad
from tests.helpers import SHAKESPEARE_VOCAB, run_pipeline, tiny_config
from tests.reliability.samples import (CLS_JSONL, CONLL, CORPUS, CSV, MC_JSONL,
                                       NER_LABELS, SQUAD, SWAG, TSV)

# Good files, line by line (tests/reliability/samples.py; a bad variant changes known
# lines).
SQUAD_TEXT = "\n".join(SQUAD)


def latin1(lines, line):
    """The file as latin-1, with an é on 1-based `line` (one byte, not UTF-8)."""
    lines = list(lines)
    lines[line - 1] = lines[line - 1].replace("e", "é", 1)
    return ("\n".join(lines) + "\n").encode("latin-1")


SPEC = ColumnSpec("auto", "sentence", None, "label")
LABELS = ("neg", "pos")
# The classifier's training rows: 3 good, then one bad row of each kind, then 2 good.
TRAIN_TSV = TSV + ["the lord\tis\tneg",      # line 5: 3 fields, the header has 2
                   "a lord\tneutral",        # line 6: outside the label set
                   "   \tpos",               # line 7: empty text
                   "the good king\tpos",    # line 8: latin1() makes it not UTF-8
                   "a dead king\tneg"]
BAD_TSV_LINES = (5, 6, 7, 8)
NO_LABEL_SET = "label names are"  # what the label-set reason says


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else ("\n".join(data) + "\n").encode())
    return str(path)


def _warning(err, path, skipped, total, unit, first_line):
    """The one log line of a file's skipped records, naming the first by its line."""
    match = re.search(rf"WARNING: skip_bad_records: skipped {skipped} of {total} {unit} "
                      rf"of {re.escape(path)}; the first: {re.escape(path)}:(\d+): ", err)
    assert match and int(match.group(1)) == first_line, err
    return match


# -- the shared text reader ---------------------------------------------------------------

def test_a_nul_byte_is_named_with_its_line_and_byte(tmp_path):
    path = _write(tmp_path, "train.tsv", b"sentence\tlabel\nthe king\x00\tpos\n")
    with pytest.raises(ValueError) as error:
        read_text(path)
    assert str(error.value) == (f"{path}:2: not UTF-8 text (a NUL byte at byte 23: "
                                "UTF-16 or binary?)")


def test_bad_lines_are_collected_when_skipping_and_the_others_read(tmp_path):
    path = _write(tmp_path, "train.tsv", latin1(TSV, 3))
    bad = {}
    lines = read_text(path, bad).split("\n")
    assert list(bad) == [3] and bad[3].startswith(f"{path}:3: not UTF-8")
    assert lines[1] == TSV[1] and lines[3] == TSV[3]
    assert lines[2].count("\t") == 1  # the delimiters of the bad line stay


# -- classifier rows ------------------------------------------------------------------------

def test_classifier_rows_are_skipped_counted_and_logged(tmp_path, capsys):
    path = _write(tmp_path, "train.tsv", latin1(TRAIN_TSV, 8))
    skipped = []
    examples = read_examples(path, SPEC, skip_bad_records=True, label_names=LABELS,
                             skipped=skipped)
    assert examples.line_numbers == (2, 3, 4, 9)  # the good rows, and only them
    assert examples.text_a[-1] == "a dead king" and examples.labels[-1] == "neg"
    assert [int(r.split(":")[1]) for r in skipped] == list(BAD_TSV_LINES)
    assert "3 field(s)" in skipped[0] and "'neutral'" in skipped[1]
    assert "empty text" in skipped[2] and "not UTF-8" in skipped[3]
    _warning(capsys.readouterr().err, path, 4, 8, "rows", 5)


def test_by_default_the_first_bad_row_is_the_error(tmp_path):
    path = _write(tmp_path, "train.tsv", latin1(TRAIN_TSV, 8))
    with pytest.raises(ValueError, match=re.escape(f"{path}:8: not UTF-8")):  # read first
        read_examples(path, SPEC, label_names=LABELS)
    path = _write(tmp_path, "train.tsv", TRAIN_TSV)
    with pytest.raises(ValueError, match=re.escape(f"{path}:5: 3 field(s)")):
        read_examples(path, SPEC, label_names=LABELS)
    good = _write(tmp_path, "good.tsv", TSV[:3] + ["a lord\tneutral"])
    with pytest.raises(ValueError, match=re.escape(f"{good}:4: unknown label 'neutral'; "
                                                   f"the {NO_LABEL_SET}")):
        read_examples(good, SPEC, label_names=LABELS)


def test_a_csv_record_holding_an_undecodable_line_is_dropped_whole(tmp_path):
    lines = CSV[:2] + ['"the lord,', 'is dead",neg'] + CSV[2:]  # a record on lines 3-4
    path = _write(tmp_path, "train.csv", latin1(lines, 4))
    skipped = []
    examples = read_examples(path, SPEC, skip_bad_records=True, skipped=skipped)
    assert examples.line_numbers == (2, 5, 6)
    assert examples.text_a == ("the king, good", "the king, dead", "a lord")
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}:4: not UTF-8")


def test_json_lines_rows_are_skipped(tmp_path):
    lines = CLS_JSONL + ['{"sentence": "cut', json.dumps({"sentence": "x"})]
    path = _write(tmp_path, "train.jsonl", latin1(lines, 2))
    skipped = []
    examples = read_examples(path, SPEC, skip_bad_records=True, skipped=skipped)
    assert examples.line_numbers == (1, 3)
    assert ["not UTF-8" in skipped[0], "not valid JSON" in skipped[1],
            "no key 'label'" in skipped[2]] == [True] * 3


def test_an_unparseable_regression_score_is_skipped(tmp_path):
    path = _write(tmp_path, "train.tsv", ["sentence\tscore", "a\t1.5", "b\thigh", "c\t2"])
    spec = ColumnSpec("tsv", "sentence", None, "score", problem_type=names.REGRESSION)
    examples = read_examples(path, spec, skip_bad_records=True, label_names=LABELS)
    assert examples.labels == (1.5, 2.0)


@pytest.mark.parametrize("name, lines, layout_error", [
    ("header.tsv", ["sentence\tlabel\tlabel"] + TSV[1:], "more than one column named"),
    ("quotes.csv", CSV + ['"never closed,pos'], "malformed CSV record"),
    ("array.jsonl", ["[" + ", ".join(CLS_JSONL) + "]"], "a JSON array"),
])
def test_a_file_layout_error_is_never_skipped(tmp_path, name, lines, layout_error):
    path = _write(tmp_path, name, lines)
    with pytest.raises(ValueError, match=layout_error):
        read_examples(path, SPEC, skip_bad_records=True)


@pytest.mark.parametrize("name, data", [
    ("utf16.tsv", ("\n".join(TSV) + "\n").encode("utf-16-le")),  # the header is bad
    ("labels.tsv", "\n".join(TSV[:1] + [r.replace("pos", "meh").replace("neg", "meh")
                                       for r in TSV[1:]]).encode()),
    ("all.jsonl", ("\n".join(CLS_JSONL) + "\n").encode("utf-16-le")),
])
def test_a_file_with_no_good_row_is_an_error_saying_so(tmp_path, name, data):
    path = _write(tmp_path, name, data)
    with pytest.raises(ValueError, match=f"{re.escape(path)}(:1: not UTF-8|: all 3 rows "
                                         "are bad)"):
        read_examples(path, SPEC, skip_bad_records=True, label_names=LABELS)


# -- NER sentences --------------------------------------------------------------------------

def test_a_conll_sentence_holding_a_bad_line_is_dropped_whole(tmp_path, capsys):
    lines = CONLL + ["", "Romeo O O", "sleeps O", "", "Tybalt B-PER", "dies X-O", "",
                     "Mercutio B-PER"]  # sentences 3 (line 9) and 4 (line 13) are bad
    path = _write(tmp_path, "train.txt", latin1(lines, 5))  # and sentence 2 (line 5)
    skipped = []
    ner_file = read_ner_file(path, skip_bad_records=True, skipped=skipped)
    assert ner_file.sentences == [["Romeo", "speaks"], ["Mercutio"]]
    assert ner_file.word_lines == [[1, 2], [15]]
    assert [int(r.split(":")[1]) for r in skipped] == [5, 9, 13]
    _warning(capsys.readouterr().err, path, 3, 5, "sentences", 5)
    with pytest.raises(ValueError, match=f"{re.escape(path)}:5: not UTF-8"):
        read_ner_file(path)


def test_ner_json_lines_and_tags_outside_the_label_set_are_skipped(tmp_path, capsys):
    lines = [json.dumps({"words": ["Romeo", "speaks"], "tags": ["B-PER", "O"]}),
             json.dumps({"words": ["in", "Rome"], "tags": ["O", "B-GPE"]}),  # no GPE
             json.dumps({"words": ["Verona"], "tags": ["B-LOC", "O"]}),  # 2 tags, 1 word
             json.dumps({"words": ["in", "Verona"], "tags": ["O", "B-LOC"]})]
    path = _write(tmp_path, "train.jsonl", lines)
    skipped = []
    ner_file = read_ner_file(path, skip_bad_records=True, skipped=skipped)
    assert len(ner_file.sentences) == 3 and skipped[0].startswith(f"{path}:3: field "
                                                                  "'tags' must be")
    check_tags(ner_file, NER_LABELS, "labels.txt", skip_bad_records=True, skipped=skipped)
    assert ner_file.sentences == [["Romeo", "speaks"], ["in", "Verona"]]
    assert len(ner_file.tags) == len(ner_file.word_lines) == 2
    assert [r.split(":")[1] for r in skipped] == ["3", "2"]
    _warning(capsys.readouterr().err, path, 1, 3, "sentences", 2)
    with pytest.raises(ValueError, match=f"{re.escape(path)}: all 2 sentences are bad"):
        check_tags(ner_file, ("O",), "labels.txt", skip_bad_records=True)


def test_a_ner_file_with_no_good_sentence_is_an_error_saying_so(tmp_path):
    path = _write(tmp_path, "train.txt", ["Romeo B-PER", "speaks S-O", "", "Juliet X"])
    with pytest.raises(ValueError, match=f"{re.escape(path)}: all 2 sentences are bad"):
        read_ner_file(path, skip_bad_records=True)


# -- multiple-choice records ----------------------------------------------------------------

def test_multiple_choice_records_are_skipped_in_both_layouts(tmp_path, capsys):
    swag = _write(tmp_path, "train.csv", latin1(SWAG + ["Juliet,sleeps,now,1"], 3))
    skipped = []
    examples = read_multiple_choice(swag, skip_bad_records=True, skipped=skipped)
    assert [e.line for e in examples] == [2, 4]
    assert skipped[0].startswith(f"{swag}:3: not UTF-8") and "4 fields" in skipped[1]
    _warning(capsys.readouterr().err, swag, 2, 4, "records", 3)
    jsonl = _write(tmp_path, "train.jsonl", MC_JSONL + [MC_JSONL[0].replace('"label": 0',
                                                                            '"label": 7')])
    examples = read_multiple_choice(jsonl, skip_bad_records=True)
    assert [e.line for e in examples] == [1, 2, 3]
    with pytest.raises(ValueError, match=f"{re.escape(jsonl)}:4: label 7 is out of range"):
        read_multiple_choice(jsonl)
    every = _write(tmp_path, "bad.jsonl", [r.replace('"label": ', '"label": 1') for r in
                                           MC_JSONL])
    with pytest.raises(ValueError, match="all 3 records are bad"):
        read_multiple_choice(every, skip_bad_records=True)


# -- the runs: what is trained on and recorded; evaluation files never skip ----------------

def _tiny(tmp_path, **fields):
    return dict(model_dir=str(tmp_path / "run"), bert_config=tiny_config(vocab_size=927),
                vocab_file=SHAKESPEARE_VOCAB, do_lower_case=True, max_seq_length=32,
                train_batch_size=2, num_train_steps=1, **fields)


def _recorded(tmp_path, run_file):
    with open(tmp_path / "run" / run_file) as f:
        return json.load(f)


@pytest.mark.parametrize("task", [classification, multiple_choice, ner, squad])
def test_a_resumed_run_must_share_the_setting(task):
    assert "skip_bad_records" in task.RESUME_SETTINGS


def test_a_ner_run_trains_on_the_good_sentences_and_records_the_count(tmp_path):
    train = _write(tmp_path, "train.txt", latin1(CONLL + ["", "Tybalt B-PER", "dies O"], 5))
    config = ner.NerRunConfig(**_tiny(tmp_path, train_file=train, do_train=True,
                                      skip_bad_records=True))
    ner.run_ner(config)
    recorded = _recorded(tmp_path, names.NER_RUN_FILE)
    assert recorded["skip_bad_records"] is True
    assert recorded["data"]["train_sentences"] == 2  # of 3: "Juliet sleeps in Verona" not
    assert recorded["data"]["skipped_train_records"] == 1
    # The same run resumed without the setting (on a mended file) is refused, naming it.
    _write(tmp_path, "train.txt", CONLL + ["", "Tybalt B-PER", "dies O"])
    with pytest.raises(ValueError, match=r"skip_bad_records=True \(now False\)"):
        ner.run_ner(ner.NerRunConfig(**_tiny(tmp_path, train_file=train, do_train=True)))


def test_an_evaluation_file_is_never_skipped(tmp_path):
    good = _write(tmp_path, "train.txt", CONLL)
    dev = _write(tmp_path, "dev.txt", latin1(CONLL, 5))
    with pytest.raises(ValueError, match=f"{re.escape(dev)}:5: not UTF-8"):
        ner.run_ner(ner.NerRunConfig(**_tiny(tmp_path, train_file=good, eval_file=dev,
                                             do_train=True, do_eval=True,
                                             skip_bad_records=True)))
    assert not os.path.exists(tmp_path / "run")


def test_a_squad_run_records_the_skipped_questions_and_never_skips_predictions(tmp_path):
    train = _write(tmp_path, "train.json", SQUAD_TEXT.replace(
        '"answer_start": 15', '"answer_start": 40').encode())
    fields = dict(_tiny(tmp_path, train_file=train, do_train=True, skip_bad_records=True),
                  max_seq_length=48, max_query_length=8, doc_stride=16)
    with pytest.raises(ValueError, match="question 'q1': answer 'France' is not at"):
        squad.run_squad(squad.SquadRunConfig(**fields, predict_file=train, do_predict=True))
    squad.run_squad(squad.SquadRunConfig(**fields))
    data = _recorded(tmp_path, names.SQUAD_RUN_FILE)["data"]
    assert data["train_questions"] == 1 and data["skipped_train_records"] == 1


def test_a_classifier_run_reads_the_good_training_rows_and_never_eval_rows(tmp_path):
    from keras_bert_app.training.classifier_inputs import read_classifier_data

    train = _write(tmp_path, "train.tsv", latin1(TRAIN_TSV, 8))
    fields = dict(train_file=train, text_a_column="sentence", label_column="label",
                  label_names=LABELS, do_train=True, skip_bad_records=True)
    data = read_classifier_data(classification.ClassifierRunConfig(**_tiny(tmp_path,
                                                                           **fields)))
    assert len(data.train) == 4 and data.settings()["skipped_train_records"] == 4
    dev = _write(tmp_path, "dev.tsv", TSV + ["a lord\tneutral"])
    with pytest.raises(ValueError, match=f"{re.escape(dev)}:5: .*'neutral'"):
        read_classifier_data(classification.ClassifierRunConfig(**_tiny(
            tmp_path, eval_file=dev, do_eval=True, **fields)))


def test_a_multiple_choice_run_reads_the_good_training_records(tmp_path):
    from keras_bert_app.training.multiple_choice_inputs import read_multiple_choice_data

    train = _write(tmp_path, "train.csv", latin1(SWAG, 3))
    dev = _write(tmp_path, "dev.csv", latin1(SWAG, 3))
    config = multiple_choice.MultipleChoiceRunConfig(**_tiny(
        tmp_path, train_file=train, do_train=True, skip_bad_records=True))
    data = read_multiple_choice_data(config)
    assert len(data.train) == 2 and data.settings()["skipped_train_records"] == 1
    with pytest.raises(ValueError, match=f"{re.escape(dev)}:3: not UTF-8"):
        read_multiple_choice_data(multiple_choice.MultipleChoiceRunConfig(**_tiny(
            tmp_path, train_file=train, eval_file=dev, do_train=True, do_eval=True,
            skip_bad_records=True)))


# -- the pipelines' flags ---------------------------------------------------------------------

def test_the_pipelines_take_the_flag_and_log_the_count(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    conll = _write(tmp_path, "train.txt", latin1(CONLL + ["", "Tybalt B-PER"], 5))
    corpus = _write(tmp_path, "corpus.txt", latin1(CORPUS, 4))
    runs = {
        "run_ner": (f"--train_file={conll}", "--do_train", "--skip_bad_records",
                    "--preset=bert_tiny", f"--vocab_file={SHAKESPEARE_VOCAB}",
                    "--do_lower_case", "--max_seq_length=16", "--train_batch_size=2",
                    "--num_train_steps=1", f"--model_dir={tmp_path / 'ner'}"),
        "create_pretraining_data": (
            f"--input_file={corpus}", f"--output_file={tmp_path / 'records'}/a.tfrecord",
            f"--vocab_file={SHAKESPEARE_VOCAB}", "--max_seq_length=32",
            "--max_predictions_per_seq=5", "--dupe_factor=1", "--skip_bad_records")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = {name: pool.submit(run_pipeline, name, *flags)
                   for name, flags in runs.items()}
        results = {name: future.result() for name, future in results.items()}
    _warning(results["run_ner"].stderr, conll, 1, 3, "sentences", 5)
    with open(tmp_path / "ner" / names.NER_RUN_FILE) as f:
        assert json.load(f)["data"]["skipped_train_records"] == 1
    assert f"{corpus}: dropped 1 line(s)" in results["create_pretraining_data"].stderr
    with open(tmp_path / "records" / names.PRETRAINING_METADATA_FILE) as f:
        assert json.load(f)["skipped_lines"] == 1


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
