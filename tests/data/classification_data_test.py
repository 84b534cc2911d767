"""Classification input files: GLUE's layouts as download_glue_data.py ships them (and the
real training sets in ../shared/data), TSV / CSV / JSON lines by column name or index,
label vocabularies, the predictions file, and one-line errors naming path:line."""

import csv
import os
import sys

import numpy as np
import pytest

from keras_bert_app.data.classification_data import (ColumnSpec, glue_task, label_ids,
                                                     label_names_for, read_examples,
                                                     write_predictions)
from tests.helpers import require_shared_data


def write(directory, name, text):
    path = os.path.join(str(directory), name)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def tsv(*rows):
    return "".join("\t".join(row) + "\n" for row in rows)


MNLI_COLUMNS = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2"]
MNLI_ROW = ["0", "31193", "31193n", "government", "( A )", "( B )", "(ROOT (A))",
            "(ROOT (B))", "Cream skimming has two dimensions.", "Product matters."]
MNLI_TRAIN = tsv(MNLI_COLUMNS + ["label1", "gold_label"], MNLI_ROW + ["neutral", "neutral"])
# dev: five annotator labels, then gold_label (here not label1) last.
MNLI_DEV = tsv(MNLI_COLUMNS + [f"label{i}" for i in range(1, 6)] + ["gold_label"],
               MNLI_ROW + ["contradiction", "entailment", "entailment", "entailment",
                           "neutral", "entailment"])
MNLI_TEST = tsv(MNLI_COLUMNS, MNLI_ROW)
MNLI_TEXTS = ("Cream skimming has two dimensions.", "Product matters.")
# One train/dev row and one test row per task, with the exact headers of GLUE's files.
GLUE_FILES = [
    # task, split, file text, (text_a, text_b, label) of its one example
    ("SST-2", "train", "sentence\tlabel\nhide new secretions \t0\n",
     ("hide new secretions ", None, "0")),
    ("sst-2", "test", "index\tsentence\n0\tit 's a charming journey .\n",
     ("it 's a charming journey .", None, None)),
    ("CoLA", "dev", "gj04\t0\t*\tThey drank the pub.\n",
     ("They drank the pub.", None, "0")),
    ("cola", "test", "index\tsentence\n0\tBill whistled past the house.\n",
     ("Bill whistled past the house.", None, None)),
    ("MRPC", "train", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
     "1\t702876\t702977\tHe called \" the witness \" .\tAs \" the witness \" .\r\n",
     ('He called " the witness " .', 'As " the witness " .', "1")),
    ("mrpc", "test", "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
     "0\t1089874\t1089925\tPCCW 's chief .\tCurrent Chief .\n",
     ("PCCW 's chief .", "Current Chief .", None)),
    ("STS-B", "dev", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
     "\tsentence2\tscore\n0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane."
     "\tAn air plane.\t3.800\n", ("A plane.", "An air plane.", 3.8)),
    ("stsb", "test", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
     "\tsentence2\n0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane."
     "\tA jet.\n",
     ("A plane.", "A jet.", None)),
    ("QQP", "train", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
     "133273\t213221\t213222\tHow is life?\tHow is the life?\t1\n",
     ("How is life?", "How is the life?", "1")),
    ("qqp", "test", "id\tquestion1\tquestion2\n0\tWhy?\tWhy not?\n",
     ("Why?", "Why not?", None)),
    ("QNLI", "dev", "index\tquestion\tsentence\tlabel\n0\tWhen?\tIn 1990.\tentailment\n",
     ("When?", "In 1990.", "entailment")),
    ("qnli", "test", "index\tquestion\tsentence\n0\tWho?\tNobody.\n",
     ("Who?", "Nobody.", None)),
    ("RTE", "train", "index\tsentence1\tsentence2\tlabel\n"
     "0\tNo weapons found.\tWeapons found.\tnot_entailment\n",
     ("No weapons found.", "Weapons found.", "not_entailment")),
    ("rte", "test", "index\tsentence1\tsentence2\n0\tA cat.\tAn animal.\n",
     ("A cat.", "An animal.", None)),
    ("WNLI", "dev", "index\tsentence1\tsentence2\tlabel\n0\tI poured.\tIt was full.\t1\n",
     ("I poured.", "It was full.", "1")),
    ("wnli", "test", "index\tsentence1\tsentence2\n0\tA.\tB.\n", ("A.", "B.", None)),
    ("MNLI", "train", MNLI_TRAIN, MNLI_TEXTS + ("neutral",)),
    ("MNLI", "dev_matched", MNLI_DEV, MNLI_TEXTS + ("entailment",)),
    ("MNLI", "dev_mismatched", MNLI_DEV, MNLI_TEXTS + ("entailment",)),
    ("mnli", "test_matched", MNLI_TEST, MNLI_TEXTS + (None,)),
    ("mnli", "test_mismatched", MNLI_TEST, MNLI_TEXTS + (None,)),
]


@pytest.mark.parametrize("name,split,text,expected", GLUE_FILES,
                         ids=[f"{name}-{split}" for name, split, _, _ in GLUE_FILES])
def test_glue_layouts_read_each_split(tmp_path, name, split, text, expected):
    task = glue_task(name)
    write(tmp_path, f"{split}.tsv", text)
    path = task.file(str(tmp_path), split)
    examples = read_examples(path, task.spec(split), require_labels="test" not in split)
    text_a, text_b, label = expected
    assert examples.text_a == (text_a,)
    assert examples.text_b == (None if text_b is None else (text_b,))
    assert examples.labels == (None if label is None else (label,))
    headerless = task.name == "CoLA" and split != "test"
    assert examples.line_numbers == ((1,) if headerless else (2,))
    if label is not None:
        assert label_names_for(examples, task.label_names) == task.label_names


def test_glue_task_names_metrics_and_files(tmp_path):
    for spelling in ("SST-2", "sst-2", "sst2", "Sst_2"):
        assert glue_task(spelling).name == "SST-2"
    assert glue_task("stsb").name == "STS-B" and glue_task("cola").name == "CoLA"
    assert glue_task("CoLA").metrics[0] == "mcc" and glue_task("MRPC").metrics[0] == "f1"
    assert glue_task("STS-B").metrics == ("pearson", "spearman")
    assert glue_task("STS-B").label_names is None
    assert glue_task("MNLI").eval_splits == ("dev_matched", "dev_mismatched")
    with pytest.raises(ValueError, match="unknown GLUE task 'xnli'.*SST-2.*WNLI"):
        glue_task("xnli")
    with pytest.raises(ValueError, match="no split 'dev'.*dev_matched"):
        glue_task("MNLI").spec("dev")
    with pytest.raises(FileNotFoundError, match=os.path.join(str(tmp_path), "dev.tsv")):
        glue_task("RTE").file(str(tmp_path), "dev")


# Data rows of the real training sets (../shared/data/README.md).
REAL = [("SST-2", 67349), ("MRPC", 3668), ("STS-B", 5749), ("CoLA", 8551), ("RTE", 2490)]


@pytest.mark.parametrize("name,rows", REAL, ids=[name for name, _ in REAL])
def test_real_glue_training_sets_read_every_row(name, rows):
    folder = os.path.join(require_shared_data(), "glue", name)
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} is absent")
    task = glue_task(name)
    examples = read_examples(task.file(folder, "train"), task.spec("train"))
    assert len(examples) == rows
    first = 1 if name == "CoLA" else 2  # CoLA has no header
    assert examples.line_numbers == tuple(range(first, first + rows))
    assert all(text.strip() for text in examples.text_a)
    if task.label_names is None:
        assert all(0.0 <= score <= 5.0 for score in examples.labels)
    else:
        assert label_names_for(examples, task.label_names) == task.label_names
    if name == "MRPC":  # bare quotes stay text (quoting on would merge rows)
        assert examples.text_a[0].startswith('Amrozi accused his brother , whom he '
                                             'called " the witness " ,')
        assert examples.labels[:2] == ("1", "0")


def test_tsv_columns_by_name_or_index_and_digit_strings(tmp_path):
    path = write(tmp_path, "pairs.tsv", "id\tleft\tright\ty\n7\tA cat .\tA pet .\tyes\n"
                 "8\tA car .\tA pet .\tno\n")
    by_name = read_examples(path, ColumnSpec(text_a_column="left", text_b_column="right",
                                             label_column="y"))
    assert by_name.text_a == ("A cat .", "A car .") and by_name.labels == ("yes", "no")
    assert by_name.text_b == ("A pet .", "A pet .") and by_name.line_numbers == (2, 3)
    by_index = read_examples(path, ColumnSpec(text_a_column=1, text_b_column=2,
                                              label_column=3))
    assert by_index == by_name
    headerless = read_examples(path, ColumnSpec(text_a_column="1", label_column="3",
                                                has_header=False), skip_rows=1)
    assert headerless.text_a == by_name.text_a and headerless.line_numbers == (2, 3)


def test_csv_quoted_commas_and_embedded_newlines(tmp_path):
    path = write(tmp_path, "data.csv", 'text,label\n"Hello, world",pos\n"two\nlines",neg\n'
                 'plain,pos\n')
    examples = read_examples(path, ColumnSpec(text_a_column="text", label_column="label"))
    assert examples.text_a == ("Hello, world", "two\nlines", "plain")
    assert examples.labels == ("pos", "neg", "pos")
    assert examples.line_numbers == (2, 3, 5)  # where each record starts
    no_header = write(tmp_path, "bare.csv", '"a, b",1\nc,0\n')
    examples = read_examples(no_header, ColumnSpec(text_a_column=0, label_column=1,
                                                   has_header=False))
    assert examples.text_a == ("a, b", "c") and examples.line_numbers == (1, 2)


def test_tsv_quoting_is_off_unless_asked(tmp_path):
    path = write(tmp_path, "q.tsv", 'text\tlabel\n"quoted\ttab"\t1\nsay " hi\t0\n')
    with pytest.raises(ValueError, match=r"q.tsv:2: 3 field\(s\) where the header has 2"):
        read_examples(path, ColumnSpec(text_a_column="text", label_column="label"))
    path = write(tmp_path, "q.tsv", 'text\tlabel\n"quoted\ttab"\t1\n"say "" hi"\t0\n')
    quoted = read_examples(path, ColumnSpec(text_a_column="text", label_column="label",
                                            quoting=True))
    assert quoted.text_a == ("quoted\ttab", 'say " hi')


def test_json_lines_by_key_and_format_by_extension(tmp_path):
    text = ('{"q": "Who?", "a": "Me.", "label": 1}\n'
            '{"q": "Why?", "a": "So.", "label": "0"}\n\n')
    for name in ("data.jsonl", "data.json"):
        examples = read_examples(write(tmp_path, name, text),
                                 ColumnSpec(text_a_column="q", text_b_column="a",
                                            label_column="label"))
        assert examples.text_a == ("Who?", "Why?") and examples.text_b == ("Me.", "So.")
        assert examples.labels == ("1", "0") and examples.line_numbers == (1, 2)
    path = write(tmp_path, "data.jsonl", text)
    with pytest.raises(ValueError, match="keys"):
        read_examples(path, ColumnSpec(text_a_column=0, label_column="label"))
    with pytest.raises(ValueError, match="JSON array"):
        read_examples(write(tmp_path, "array.json", '[{"q": "x"}]'),
                      ColumnSpec(text_a_column="q", label_column="label"))
    with pytest.raises(ValueError, match=r"extension '\.txt'"):
        read_examples(write(tmp_path, "data.txt", "a\t1\n"),
                      ColumnSpec(text_a_column=0, label_column=1, has_header=False))


def test_multi_label_with_a_separator_and_json_lists(tmp_path):
    spec = ColumnSpec(text_a_column="text", label_column="tags", label_separator=",",
                      problem_type="multi_label")
    path = write(tmp_path, "tags.tsv", "text\ttags\nA\tsports, politics\nB\t\nC\tsports\n")
    examples = read_examples(path, spec)
    assert examples.labels == (("sports", "politics"), (), ("sports",))
    names = label_names_for(examples)
    assert names == ("politics", "sports")
    np.testing.assert_array_equal(label_ids(examples, names), [[1, 1], [0, 0], [0, 1]])
    assert label_ids(examples, names).dtype == np.float32
    jsonl = write(tmp_path, "tags.jsonl", '{"text": "A", "tags": ["x", "y"]}\n')
    assert read_examples(jsonl, spec).labels == (("x", "y"),)
    with pytest.raises(ValueError, match="label_separator"):
        read_examples(path, ColumnSpec(text_a_column="text", label_column="tags",
                                       problem_type="multi_label"))


def test_regression_labels_are_floats(tmp_path):
    spec = ColumnSpec(text_a_column="text", label_column="score", problem_type="regression")
    examples = read_examples(write(tmp_path, "r.tsv", "text\tscore\nA\t1.5\nB\t4\n"), spec)
    assert examples.labels == (1.5, 4.0) and label_names_for(examples) is None
    ids = label_ids(examples, None)
    assert ids.dtype == np.float32 and ids.tolist() == [1.5, 4.0]


@pytest.mark.parametrize("name,text,spec,where", [
    ("missing column", "sentence\tlabel\nA\t1\n",
     ColumnSpec(text_a_column="text", label_column="label"),
     r"bad.tsv: no column named 'text' \(text_a\); the header's columns are "
     r"\['sentence', 'label'\]"),
    ("too few fields", "A\t1\nonly text\n",
     ColumnSpec(text_a_column=0, label_column=1, has_header=False),
     r"bad.tsv:2: 1 field\(s\), too few for column 1 \(label, index 1\): \['only text'\]"),
    ("fields unlike the header", "sentence\tlabel\nA\t1\nonly text\n",
     ColumnSpec(text_a_column="sentence", label_column="label"),
     r"bad.tsv:3: 1 field\(s\) where the header has 2: \['only text'\]"),
    ("empty text_a", "sentence\tlabel\nA\t1\n \t0\n",
     ColumnSpec(text_a_column="sentence", label_column="label"),
     r"bad.tsv:3: column 'sentence' \(text_a\): empty text"),
    ("non-numeric score", "text\tscore\nA\t1.5\nB\tabc\n",
     ColumnSpec(text_a_column="text", label_column="score", problem_type="regression"),
     r"bad.tsv:3: column 'score' \(label\): not a finite number: 'abc'"),
    ("blank line inside", "sentence\tlabel\nA\t1\n\nB\t0\n",
     ColumnSpec(text_a_column="sentence", label_column="label"), r"bad.tsv:3: "),
    ("invalid UTF-8", b"sentence\tlabel\nA\t1\n\xff\t0\n",
     ColumnSpec(text_a_column="sentence", label_column="label"), r"bad.tsv:3: not UTF-8"),
    ("empty file", "", ColumnSpec(text_a_column="sentence", label_column="label"),
     "bad.tsv: no examples"),
    ("header only", "sentence\tlabel\n\n",
     ColumnSpec(text_a_column="sentence", label_column="label"), "bad.tsv: no examples"),
    ("no label column", "sentence\nA\n", ColumnSpec(text_a_column="sentence"),
     "labels are required"),
    ("name without header", "A\t1\n",
     ColumnSpec(text_a_column="sentence", label_column=1, has_header=False),
     "'sentence' is a name"),
])
def test_bad_rows_name_path_line_column_and_value(tmp_path, name, text, spec, where):
    path = write(tmp_path, "bad.tsv", text)
    with pytest.raises(ValueError, match=where):
        read_examples(path, spec)


def test_bad_json_lines_name_path_line_and_key(tmp_path):
    spec = ColumnSpec(text_a_column="text", label_column="label")
    path = write(tmp_path, "bad.jsonl", '{"text": "A", "label": "x"}\n{"text": "B", \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_examples(path, spec)
    path = write(tmp_path, "bad.jsonl", '{"text": "A", "label": "x"}\n{"txt": "B"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: no key 'text' \(text_a\)"):
        read_examples(path, spec)


def test_bom_crlf_and_trailing_blank_lines(tmp_path):
    path = write(tmp_path, "win.csv", "\ufefftext,label\r\nA,1\r\nB,0\r\n\r\n\r\n")
    examples = read_examples(path, ColumnSpec(text_a_column="text", label_column="label"))
    assert examples.text_a == ("A", "B") and examples.labels == ("1", "0")
    path = write(tmp_path, "win.tsv", "\ufefftext\tlabel\r\nA\t1\r\nB\t0\r\n\r\n")
    examples = read_examples(path, ColumnSpec(text_a_column="text", label_column="label"))
    assert examples.labels == ("1", "0") and examples.line_numbers == (2, 3)


def test_optional_labels_are_read_when_present(tmp_path):
    spec = ColumnSpec(text_a_column="sentence", label_column="label")
    unlabeled = write(tmp_path, "test.tsv", "index\tsentence\n0\tA\n")
    assert read_examples(unlabeled, spec, require_labels=False).labels is None
    labeled = write(tmp_path, "dev.tsv", "sentence\tlabel\nA\t1\n")
    assert read_examples(labeled, spec, require_labels=False).labels == ("1",)


def test_label_names_sort_numbers_as_numbers_and_check_given_names(tmp_path):
    spec = ColumnSpec(text_a_column=0, label_column=1, has_header=False)
    numeric = read_examples(write(tmp_path, "n.tsv", "a\t10\nb\t2\nc\t1\nd\t2\n"), spec)
    assert label_names_for(numeric) == ("1", "2", "10")
    words = read_examples(write(tmp_path, "w.tsv", "a\tneutral\nb\tcontradiction\n"), spec)
    assert label_names_for(words) == ("contradiction", "neutral")
    with pytest.raises(ValueError, match=r"w.tsv:2: label 'contradiction' is not one of "
                                         r"the known label names "
                                         r"\('entailment', 'neutral'\)"):
        label_names_for(words, given=("entailment", "neutral"))
    np.testing.assert_array_equal(label_ids(numeric, ("1", "2", "10")), [2, 1, 0, 1])
    assert label_ids(numeric, ("1", "2", "10")).dtype == np.int32
    with pytest.raises(ValueError, match=r"n.tsv:1: unknown label '10'"):
        label_ids(numeric, ("1", "2"))


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_write_predictions_round_trips_and_leaves_no_partial_file(tmp_path):
    source = write(tmp_path, "dev.csv", 'a,b,label\n"tab\there",x,pos\nsecond,y,neg\n')
    examples = read_examples(source, ColumnSpec(text_a_column="a", text_b_column="b",
                                                label_column="label"))
    out = os.path.join(str(tmp_path), "predictions.tsv")
    write_predictions(out, examples, "single_label", ("neg", "pos"),
                      np.array([[0.25, 0.75], [0.875, 0.125]], np.float32))
    assert sorted(os.listdir(str(tmp_path))) == ["dev.csv", "predictions.tsv"]
    rows = read_tsv(out)
    assert rows[0] == ["index", "text_a", "text_b", "label", "prediction", "prob_neg",
                       "prob_pos"]
    assert rows[1] == ["0", "tab here", "x", "pos", "pos", "0.25", "0.75"]
    assert rows[2] == ["1", "second", "y", "neg", "neg", "0.875", "0.125"]
    back = read_examples(out, ColumnSpec(text_a_column="text_a", text_b_column="text_b",
                                         label_column="prediction"))
    assert back.text_b == examples.text_b and back.labels == ("pos", "neg")

    with pytest.raises(ValueError, match="shape"):
        write_predictions(os.path.join(str(tmp_path), "bad.tsv"), examples, "single_label",
                          ("neg", "pos"), np.zeros([2, 3]))
    assert sorted(os.listdir(str(tmp_path))) == ["dev.csv", "predictions.tsv"]


def test_write_predictions_multi_label_and_regression(tmp_path):
    examples = read_examples(write(tmp_path, "t.tsv", "text\ttags\nA\tx,y\nB\t\n"),
                             ColumnSpec(text_a_column="text", label_column="tags",
                                        label_separator=",", problem_type="multi_label"))
    out = os.path.join(str(tmp_path), "p.tsv")
    write_predictions(out, examples, "multi_label", ("x", "y", "z"),
                      [[0.9, 0.5, 0.75], [0.1, 0.2, 0.3]])
    assert [row[2:4] for row in read_tsv(out)] == [["label", "prediction"], ["x,y", "x,z"],
                                                   ["", ""]]
    unlabeled = read_examples(write(tmp_path, "u.tsv", "text\nA\nB\n"),
                              ColumnSpec(text_a_column="text", problem_type="regression"),
                              require_labels=False)
    write_predictions(out, unlabeled, "regression", None, [[4.5], [0.25]])
    assert read_tsv(out) == [["index", "text_a", "prediction"], ["0", "A", "4.5"],
                             ["1", "B", "0.25"]]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
