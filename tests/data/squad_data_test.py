"""Reading SQuAD: the official layout (v1.1, v2.0) and Hugging Face's flat one, decided
from the content, with every data error named by file and question id."""

import json
import os
import sys

import pytest

from keras_bert_app.data.squad_data import SquadExample, read_squad
from tests.helpers import require_shared_data


def squad_file(tmp_path, content, name="data.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content),
                    encoding="utf-8")
    return str(path)


def official(*qas, context="Normandy is a region in France."):
    return {"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [
        {"context": context, "qas": list(qas)}]}]}


def qa(qid, answers=(("France", 24),), question="Where is Normandy?", **extra):
    return {"id": qid, "question": question,
            "answers": [{"text": t, "answer_start": s} for t, s in answers], **extra}


def test_real_squad_v1_1_training_articles_are_read_with_their_offsets():
    path = os.path.join(require_shared_data(), "squad", "train-v1.1-subset.json")
    examples = read_squad(path)
    assert len(examples) == 3807 and not any(e.is_impossible for e in examples)
    first = examples[0]
    assert first.qid == "5733be284776f41900661182"
    assert first.answers == (("Saint Bernadette Soubirous", 515),)
    assert first.context[515:515 + 26] == "Saint Bernadette Soubirous"


def test_real_squad_v2_dev_needs_version_2_with_negative():
    path = os.path.join(require_shared_data(), "squad", "dev-v2.0-first5.json")
    examples = read_squad(path, version_2_with_negative=True)
    assert len(examples) == 1407 and sum(e.is_impossible for e in examples) == 702
    assert all(not e.answers for e in examples if e.is_impossible)
    with pytest.raises(ValueError, match=r"question '.+' is unanswerable \(SQuAD v2.0\): "
                                         r"pass version_2_with_negative"):
        read_squad(path)


def test_the_flat_layout_gives_the_same_questions_as_the_official_one():
    data = require_shared_data()
    flat = read_squad(os.path.join(data, "squad", "sample.json"), True)
    nested = read_squad(os.path.join(data, "squad", "dev-v2.0.json"), True)
    by_id = {e.qid: e for e in nested}
    assert sorted(e.qid for e in flat) == sorted(by_id)
    for example in flat:
        same = by_id[example.qid]
        assert (example.question, example.context, example.is_impossible) == (
            same.question, same.context, same.is_impossible)
        # The flat sample keeps every annotator's answer, the fixture the first.
        assert example.answers[:1] == same.answers[:1]


def test_json_lines_of_flat_records_are_read(tmp_path):
    records = [{"id": "q1", "question": "Where?", "context": "In Paris.",
                "answers": {"text": ["Paris"], "answer_start": [3]}},
               {"id": "q2", "question": "Who?", "context": "Nobody here.",
                "answers": {"text": [], "answer_start": []}}]
    path = squad_file(tmp_path, "\n".join(json.dumps(r) for r in records) + "\n", "qa.jsonl")
    examples = read_squad(path, version_2_with_negative=True)
    assert examples == [SquadExample("q1", "Where?", "In Paris.", (("Paris", 3),)),
                        SquadExample("q2", "Who?", "Nobody here.", (), True)]


def test_questions_to_predict_may_come_without_answers(tmp_path):
    content = official({"id": "q1", "question": "Where is Normandy?"}, qa("q2"))
    path = squad_file(tmp_path, content)
    with pytest.raises(ValueError, match=r"question 'q1' has no 'answers'"):
        read_squad(path)
    first, second = read_squad(path, require_answers=False)
    assert (first.answers, first.is_impossible, first.has_gold) == ((), False, False)
    assert second.has_gold and second.answers == (("France", 24),)


def test_a_very_long_context_is_not_an_error(tmp_path):
    context = " ".join(["word"] * 100_000) + " France"
    path = squad_file(tmp_path, official(qa("long", (("France", len(context) - 6),)),
                                         context=context))
    (example,) = read_squad(path)
    assert example.context.endswith("France") and len(example.context.split()) == 100_001


@pytest.mark.parametrize("content,message", [
    (official(qa("q1", (("France", 23),))),
     r"question 'q1': answer 'France' is not at answer_start=23 of the context "
     r"\(there: ' Franc'\)"),
    (official(qa("q1", (("France", 900),))), r"answer_start=900 .*there: ''"),
    (official(qa("q1", (("France", "25"),))), r"question 'q1': an answer needs"),
    (official(qa("q1"), qa("q1")), r"question 'q1' occurs twice"),
    (official(qa("q1", question=" ")), r"question 'q1' has no question text"),
    (official(qa("q1"), context="  \n"), r"question 'q1' has an empty context"),
    ({"data": [{"id": "q9", "question": "Where?", "context": None,
                "answers": {"text": [], "answer_start": []}}]}, r"question 'q9' has no context"),
    (official({"question": "Where?", "answers": []}),
     r"data\[0\]\.paragraphs\[0\]\.qas\[0\] has no 'id'"),
    (official(qa("q1", answers=(), is_impossible=False)),
     r"question 'q1' has no answer and is not marked is_impossible"),
    (official(qa("q1", is_impossible=True)), r"marked is_impossible but has answers"),
    ({"data": [{"text": "no questions"}]}, r"neither an article with 'paragraphs' nor"),
    ({"version": "1.1"}, r"expected SQuAD's JSON"),
    ("", r"is empty"),
    ("{not json", r"is not JSON"),
])
def test_data_errors_name_the_file_and_the_question(tmp_path, content, message):
    path = squad_file(tmp_path, content)
    with pytest.raises(ValueError, match=message) as error:
        read_squad(path, version_2_with_negative=True)
    assert str(error.value).startswith(path)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
