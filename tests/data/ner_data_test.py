"""NER readers: CoNLL columns and JSON lines decided from the content, IOB1 converted
to IOB2, label sets, errors naming file:line, predictions.txt as conlleval reads it."""

import json
import os
import sys

import pytest

from keras_bert_app.data import ner_data
from keras_bert_app.data.ner_data import (check_tags, labels_of, read_labels_file,
                                          read_ner_file, write_predictions)
from tests.helpers import require_shared_data


def write(tmp_path, text, name="data.txt", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return str(path)


CONLL = "-DOCSTART- -X- O O\n\nEU NNP I-NP B-ORG\nrejects VBZ I-VP O\n\n" \
        "Peter NNP I-NP B-PER\nBlackburn NNP I-NP I-PER\n"  # no final blank line


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_conll_sentences_tags_and_line_numbers(tmp_path, newline):
    data = read_ner_file(write(tmp_path, CONLL, newline=newline))
    assert data.format == "conll" and data.separator == " "
    assert data.sentences == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert data.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]  # the trailing sentence too
    assert data.word_lines == [[3, 4], [6, 7]]


def test_tab_separated_and_the_tag_column(tmp_path):
    path = write(tmp_path, "New York\tNNP\tB-LOC\tx\nis\tVBZ\tO\tx\n")
    data = read_ner_file(path, tag_column=2)
    assert data.sentences == [["New York", "is"]]  # a space inside a tab-separated token
    assert data.tags == [["B-LOC", "O"]] and data.separator == "\t"
    assert read_ner_file(path, tag_column=-2).tags == [["B-LOC", "O"]]
    with pytest.raises(ValueError, match=r"data.txt:1: tag 'x' \(column 3\) is not an IOB"):
        read_ner_file(path)  # the last column is not a tag


@pytest.mark.parametrize("field", ["tags", "ner"])
def test_json_lines(tmp_path, field):
    lines = [{"words": ["CHICAGO", "AT", "ATLANTA"], field: ["B-ORG", "O", "B-LOC"]},
             {"words": ["x"], field: ["O"]}]
    data = read_ner_file(write(tmp_path, "\n".join(json.dumps(l) for l in lines) + "\n"))
    assert data.format == "jsonl" and data.tags == [["B-ORG", "O", "B-LOC"], ["O"]]
    assert data.word_lines == [[1, 1, 1], [2]]


def test_the_format_is_decided_from_the_content_not_the_name(tmp_path):
    assert read_ner_file(write(tmp_path, "a O\n", "x.json")).format == "conll"
    jsonl = write(tmp_path, '{"words": ["a"], "tags": ["O"]}\n', "x.conll")
    assert read_ner_file(jsonl).format == "jsonl"


@pytest.mark.parametrize("text,message", [
    ('[{"words": ["a"]}]\n', r"data.txt: the first line looks like JSON but is not a "
                             "JSON object"),
    ('{"words": ["a"], "tags": ["O"]}\na O\n', r"data.txt:2: not a JSON object"),
    ('{"words": ["a", "b"], "tags": ["O"]}\n', r"data.txt:1: field 'tags' must be a list "
                                               "of 2 tags"),
    ('{"words": ["a"], "tags": ["PER"]}\n', r"data.txt:1: tags\[0\]='PER' is not an IOB"),
    ('{"words": [], "tags": []}\n', r"data.txt:1: field 'words' must be a non-empty"),
    ("a O\nb\n", r"data.txt:2: 1 columns where the file's first word line has 2"),
    ("a S-PER\n", r"data.txt:1: tag 'S-PER' \(column 1\) is not an IOB tag"),
    ("a\nb\n", r"data.txt:1: one column \('a'\)"),
    ("\n\n", r"data.txt: no sentences"),
])
def test_bad_input_names_file_line_and_value(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_ner_file(write(tmp_path, text))


def test_undecodable_bytes_are_named_with_their_line(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("EU B-ORG\n\nM\u00fcller B-PER\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.conll:3: not UTF-8"):
        read_ner_file(str(path))
    with pytest.raises(FileNotFoundError, match="missing.conll"):
        read_ner_file(str(tmp_path / "missing.conll"))


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    path = tmp_path / "bom.conll"
    path.write_bytes("\ufeffEU B-ORG\n".encode("utf-8"))
    assert read_ner_file(str(path)).sentences == [["EU"]]


def test_prediction_data_needs_no_tags(tmp_path):
    data = read_ner_file(write(tmp_path, "a\nb\n\nc\n"), require_tags=False)
    assert data.sentences == [["a", "b"], ["c"]] and data.tags is None


def test_iob1_is_converted_to_iob2_and_iob2_kept(tmp_path):
    iob1 = read_ner_file(write(tmp_path, "a I-PER\nb I-PER\nc B-PER\nd O\ne I-LOC\n"
                                         "f I-ORG\n"))
    assert iob1.tags == [["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]]
    assert iob1.iob1_starts == 3
    # An IOB2 file with a stray I- after O keeps it (conlleval starts an entity
    # there; strict IOB2 does not).
    iob2 = read_ner_file(write(tmp_path, "a B-PER\nb O\nc B-LOC\nd O\ne I-ORG\n"))
    assert iob2.tags == [["B-PER", "O", "B-LOC", "O", "I-ORG"]]
    assert (iob2.iob1_starts, iob2.stray_inside) == (0, 1)


def test_label_sets(tmp_path):
    data = read_ner_file(write(tmp_path, "a B-PER\nb O\nc B-LOC\nd I-LOC\n"))
    # PER is seen only as B-PER; I-PER joins the set all the same.
    assert labels_of(data) == ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
    labels = write(tmp_path, "B-PER\nI-PER\n\nB-LOC\n", "labels.txt")
    assert read_labels_file(labels) == ("O", "B-PER", "I-PER", "B-LOC")  # file order
    with pytest.raises(ValueError, match=r"data.txt:4: tag 'I-LOC' is not in the label "
                                         r"set of labels.txt"):
        check_tags(data, read_labels_file(labels), "labels.txt")
    with pytest.raises(ValueError, match=r"labels.txt:2: label 'B-PER' is listed twice"):
        read_labels_file(write(tmp_path, "B-PER\nB-PER\n", "labels.txt"))


def test_predictions_repeat_the_lines_with_the_tag_appended(tmp_path):
    data = read_ner_file(write(tmp_path, CONLL, newline="\r\n"), require_tags=False)
    out = str(tmp_path / "predictions.txt")
    write_predictions(out, data, [["B-ORG", "O"], ["B-PER", "B-PER"]])
    with open(out, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines == ["-DOCSTART- -X- O O O", "", "EU NNP I-NP B-ORG B-ORG",
                     "rejects VBZ I-VP O O", "", "Peter NNP I-NP B-PER B-PER",
                     "Blackburn NNP I-NP I-PER B-PER", ""]
    # conlleval's one rule on layout: every non-blank line has the same columns.
    assert len({len(l.split()) for l in lines if l}) == 1


@pytest.mark.parametrize("separator", [" ", "\t"])
def test_a_short_docstart_line_gets_the_word_lines_columns(tmp_path, separator):
    text = f"-DOCSTART-{separator}O\n\nEU{separator}NNP{separator}B-ORG\n"
    data = read_ner_file(write(tmp_path, text), require_tags=False)
    out = str(tmp_path / "predictions.txt")
    write_predictions(out, data, [["B-ORG"]])
    with open(out, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert [len(l.split(separator)) for l in lines if l] == [4, 4]
    assert lines[0] == separator.join(["-DOCSTART-", "O", "O", "O"])


def test_json_predictions_are_conll_columns(tmp_path):
    data = read_ner_file(write(tmp_path, '{"words": ["a", "b"], "ner": ["B-X", "O"]}\n'),
                         require_tags=False)
    out = str(tmp_path / "predictions.txt")
    write_predictions(out, data, [["B-X", "B-X"]])
    with open(out, encoding="utf-8") as f:
        assert f.read() == "a\tB-X\tB-X\nb\tO\tB-X\n\n"


def test_real_files():
    root = require_shared_data()
    train = read_ner_file(os.path.join(root, "wnut17", "train.conll"))
    dev = read_ner_file(os.path.join(root, "wnut17", "dev.conll"))
    assert (len(train.sentences), len(dev.sentences)) == (3394, 1009)
    assert labels_of(train) == ("O",) + tuple(sorted(
        f"{p}-{t}" for p in "BI" for t in ("corporation", "creative-work", "group",
                                          "location", "person", "product")))
    assert train.iob1_starts == 0 and train.stray_inside == 0
    conll = read_ner_file(os.path.join(root, "conll2003", "eng.train"))
    assert len(conll.sentences) == 14041 and conll.iob1_starts == 23427
    assert all(not t.startswith("I-") or (i and s[i - 1][2:] == t[2:])
               for s in conll.tags for i, t in enumerate(s))  # now IOB2
    germeval = read_ner_file(os.path.join(root, "germeval", "train.txt"))
    check_tags(germeval, read_labels_file(os.path.join(root, "germeval", "labels.txt")),
               "labels.txt")
    sample = read_ner_file(os.path.join(root, "conll", "sample.json"))
    assert sample.format == ner_data.JSON_LINES and len(sample.sentences) == 10


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
