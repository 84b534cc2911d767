"""Multiple-choice files (SWAG's CSV layout, JSON lines with any number of choices)
read and checked as `run_multiple_choice` reads them, and real multiple-choice data
made from SQuAD questions."""

import collections
import json
import os
import sys

import pytest

from keras_bert_app.data.multiple_choice_data import (read_multiple_choice,
                                                      split_by_title,
                                                      squad_to_multiple_choice,
                                                      write_jsonl)
from keras_bert_app.data.squad_data import SquadExample, read_squad
from tests.helpers import require_shared_data, run_pipeline

# The layout of Hugging Face's SWAG CSVs (regular config, as run_swag reads them):
# a leading unnamed index column, and columns run_swag does not read.
SWAG_HEADER = (",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,"
               "ending2,ending3,label")
SWAG_ROWS = [
    '0,anetv_jkn6uvmqwh4,3416,"Members of the procession walk down the street holding '
    'small horn brass instruments. A drum line","Members of the procession walk down '
    'the street holding small horn brass instruments.",A drum line,gold,'
    'passes by walking down the street playing their instruments.,'
    'has heard approaching them.,"arrives and they\'re outside dancing and asleep.",'
    'turns the lead singer watches the performance.,0',
    '1,anetv_jkn6uvmqwh4,3417,"A drum line passes by walking down the street playing '
    'their instruments. Members of the procession","A drum line passes by walking down '
    'the street playing their instruments.",Members of the procession,gen,'
    '"are playing ping pong and celebrating one left each in quick.",'
    'walk down the street holding small horn brass instruments.,'
    '"are walking by, ""dancing"" in the street.",are sitting in front of the camera,1',
]


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def jsonl(tmp_path, records, name="data.jsonl"):
    return write(tmp_path, name, [json.dumps(r) for r in records])


def test_swag_csv_pairs_sent1_with_sent2_and_each_ending_as_run_swag(tmp_path):
    path = write(tmp_path, "train.csv", [SWAG_HEADER] + SWAG_ROWS)
    first, second = read_multiple_choice(path)
    assert first.context == ("Members of the procession walk down the street holding "
                             "small horn brass instruments.")
    assert first.question == "A drum line"
    assert first.choices[0] == "passes by walking down the street playing their instruments."
    assert first.label == 0 and second.label == 1
    assert second.choices[2] == 'are walking by, "dancing" in the street.'  # CSV quoting
    # run_swag's second sentences: f"{sent2} {ending}".
    assert second.second_segments() == [f"Members of the procession {e}"
                                        for e in second.choices]
    assert (first.line, second.line) == (2, 3)


def test_a_swag_test_split_without_labels_reads_for_prediction_only(tmp_path):
    header = SWAG_HEADER.rsplit(",", 1)[0]
    path = write(tmp_path, "test.csv", [header] + [r.rsplit(",", 1)[0] for r in SWAG_ROWS])
    assert [e.label for e in read_multiple_choice(path, require_labels=False)] == [None] * 2
    with pytest.raises(ValueError, match=r"test\.csv:1: no 'label' column"):
        read_multiple_choice(path)
    # Hugging Face's test split labels every row -1: no label, for prediction.
    unlabelled = write(tmp_path, "hf_test.csv", [SWAG_HEADER] + [
        r.rsplit(",", 1)[0] + ",-1" for r in SWAG_ROWS])
    assert [e.label for e in read_multiple_choice(unlabelled, False)] == [None] * 2


@pytest.mark.parametrize("header, row, message", [
    (SWAG_HEADER, SWAG_ROWS[0][:-1] + "4", r"bad\.csv:2: label 4 is out of range for 4 "
                                           r"choices \(a 0-based index\)"),
    (SWAG_HEADER, SWAG_ROWS[0][:-1] + "-1", r"bad\.csv:2: label -1 is out of range"),
    (SWAG_HEADER, SWAG_ROWS[0][:-1] + "B", r"bad\.csv:2: label 'B' is not a choice index"),
    (SWAG_HEADER, SWAG_ROWS[0].replace(",gold,", ",gold,,"), r"bad\.csv:2: 13 fields"),
    (SWAG_HEADER, SWAG_ROWS[0].replace("has heard approaching them.", " "),
     r"bad\.csv:2: ending1 is empty"),
    (SWAG_HEADER.replace("sent2", "second"), SWAG_ROWS[0], r"bad\.csv:1: neither JSON "
                                                           r"lines nor SWAG's CSV.*sent2"),
    ("sentence,label", "hello,1", r"bad\.csv:1: .*lacks sent1, sent2, ending0 and ending1"),
])
def test_bad_swag_rows_name_the_file_line_and_field(tmp_path, header, row, message):
    path = write(tmp_path, "bad.csv", [header, row])
    with pytest.raises(ValueError, match=message):
        read_multiple_choice(path)


def test_json_lines_take_any_number_of_choices_and_an_optional_question(tmp_path):
    records = [
        {"context": "Paris is the capital of France.", "question": "Capital of France?",
         "choices": ["Paris", "Lyon"], "label": 0, "id": "a"},
        {"context": "Water boils at 100 degrees.", "choices": ["50", "100", "0", "-4",
                                                               "212"], "label": 1},
        {"context": "A cat sat.", "question": None, "choices": ["x", "y", "z"], "label": 2},
    ]
    # Decided from the content, not the name: JSON lines in a .csv file.
    examples = read_multiple_choice(jsonl(tmp_path, records, name="mc.csv"))
    assert [len(e.choices) for e in examples] == [2, 5, 3]
    assert [e.label for e in examples] == [0, 1, 2]
    assert examples[0].second_segments() == ["Capital of France? Paris",
                                             "Capital of France? Lyon"]
    assert examples[1].second_segments() == list(records[1]["choices"])
    assert examples[2].question == "" and [e.line for e in examples] == [1, 2, 3]


GOOD = {"context": "c", "choices": ["a", "b", "c"], "label": 1}


@pytest.mark.parametrize("change, message", [
    ({"label": 3}, r":2: label 3 is out of range for 3 choices"),
    ({"label": True}, r":2: label True is not a choice index"),
    ({"label": "1"}, r":2: label '1' is not a choice index"),
    ({"label": 1.0}, r":2: label 1.0 is not a choice index"),
    ({"label": None}, r":2: no label"),
    ({"choices": ["only"], "label": 0}, r":2: 1 choice\(s\); a question needs at least 2"),
    ({"choices": ["a", ""]}, r":2: choices\[1\] is empty"),
    ({"choices": ["a", 7]}, r":2: choices\[1\] is not a string"),
    ({"choices": "a b"}, r":2: choices is not a list"),
    ({"context": "  "}, r":2: context is empty"),
    ({"question": 5}, r":2: question is not a string"),
])
def test_bad_json_lines_name_the_file_and_line(tmp_path, change, message):
    path = jsonl(tmp_path, [GOOD, dict(GOOD, **change)])
    with pytest.raises(ValueError, match=f"{path}{message}"):
        read_multiple_choice(path)


def test_json_lines_need_their_keys_and_valid_json(tmp_path):
    path = jsonl(tmp_path, [GOOD, {"context": "c", "choices": ["a", "b"]}])
    with pytest.raises(ValueError, match=r"data\.jsonl:2: no key 'label'"):
        read_multiple_choice(path)
    assert read_multiple_choice(path, require_labels=False)[1].label is None
    broken = write(tmp_path, "broken.jsonl", [json.dumps(GOOD), '{"context": "c",'])
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not valid JSON"):
        read_multiple_choice(broken)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_multiple_choice(str(tmp_path / "missing.jsonl"))


def squad_question(qid, title, answer, context):
    return SquadExample(qid=qid, question=f"question {qid}?", context=context,
                        answers=((answer, 0),), title=title)


def test_squad_questions_become_their_answer_among_other_answers_of_the_paragraph():
    # Article A: paragraph 1 with five questions, paragraph 2 with two; article B
    # with three questions.
    one = ["1858", "in 1858", "Paris", "the Louvre", "Napoleon"]
    questions = [squad_question(f"a{i}", "A", a, "paragraph one") for i, a in enumerate(one)]
    questions += [squad_question(f"p{i}", "A", a, "paragraph two")
                  for i, a in enumerate(["two", "blue"])]
    questions += [squad_question(f"b{i}", "B", a, "paragraph three")
                  for i, a in enumerate(["Rome", "Caesar", "44 BC"])]
    records = squad_to_multiple_choice(questions, num_choices=4, seed=3)
    by_id = {q.qid: q for q in questions}
    # Article B has too few other answers for 4 choices: its questions are left out.
    assert [r["id"] for r in records] == [q.qid for q in questions if q.title == "A"]
    for record in records:
        question = by_id[record["id"]]
        right = question.answers[0][0]
        assert record["choices"][record["label"]] == right
        assert (record["context"], record["question"]) == (question.context,
                                                           question.question)
        others = [c for i, c in enumerate(record["choices"]) if i != record["label"]]
        assert len(set(others)) == 3 and right not in others
        # Never an answer that contains, or is contained in, the right one.
        assert not any(o.lower() in right.lower() or right.lower() in o.lower()
                       for o in others)
        if question.context == "paragraph one":
            # Enough answers in its own paragraph: all of the wrong choices from there.
            assert set(others) <= set(one)
        else:  # the other answer of its paragraph, the rest from the same article
            assert len(set(others) & {"two", "blue"}) == 1
            assert set(others) <= set(one) | {"two", "blue"}
    assert squad_to_multiple_choice(questions, 4, seed=3) == records  # deterministic
    assert squad_to_multiple_choice(questions, 4, seed=4) != records
    # With 3 choices article B's questions are in.
    assert any(r["id"].startswith("b") for r in squad_to_multiple_choice(questions, 3))
    # distractors="article": any other answer of the article, paragraph or not.
    article = squad_to_multiple_choice(questions, 4, seed=3, distractors="article")
    drawn = {c for r in article for i, c in enumerate(r["choices"]) if i != r["label"]
             and by_id[r["id"]].context == "paragraph one"}
    assert drawn & {"two", "blue"}  # from the other paragraph too
    with pytest.raises(ValueError, match="distractors='sentence'"):
        squad_to_multiple_choice(questions, 4, distractors="sentence")


def test_real_squad_articles_become_train_and_held_out_multiple_choice_files(tmp_path):
    squad = os.path.join(require_shared_data(), "squad", "train-v1.1-subset.json")
    result = run_pipeline("make_multiple_choice_data", f"--squad_file={squad}",
                          f"--output_dir={tmp_path}", "--held_out_articles=2")
    train = read_multiple_choice(str(tmp_path / "train.jsonl"))
    dev = read_multiple_choice(str(tmp_path / "dev.jsonl"))
    questions = read_squad(squad)
    assert len(train) + len(dev) == len(questions) == 3807
    assert f"Wrote {len(dev)} questions of 2 articles" in result.stdout
    kept, held_out = split_by_title(questions, 2)
    assert len(held_out) == len(dev) and {e.context for e in dev} == {
        q.context for q in held_out}
    assert not {e.context for e in train} & {e.context for e in dev}
    # Nearly every wrong choice is a span of the same paragraph too: "the choice that
    # appears in the text" is no shortcut; the question decides.
    inside = [sum(c.lower() in e.context.lower() for c in e.choices) for e in train]
    assert sum(n == 4 for n in inside) > 0.9 * len(train)
    # The right answer's position is spread evenly: no position to learn.
    counts = collections.Counter(e.label for e in train)
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(0.22 < c / len(train) < 0.28 for c in counts.values()), counts
    # Every question was kept (each article has plenty of other answers), in order.
    assert [e.choices[e.label] for e in train + dev] == [
        q.answers[0][0] for q in kept + held_out]


def test_write_jsonl_round_trips_through_the_reader(tmp_path):
    records = [dict(GOOD, question="Ünïcödé 東京?"), dict(GOOD, label=2)]
    path = str(tmp_path / "out.jsonl")
    write_jsonl(path, records)
    assert [(e.question, e.label) for e in read_multiple_choice(path)] == [
        ("Ünïcödé 東京?", 1), ("", 2)]
    assert os.listdir(tmp_path) == ["out.jsonl"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
