"""SQuAD questions from the official JSON layout (v1.1, v2.0) or Hugging Face's flat
layout, checked as they are read.

Which layout a file is in is decided from its content: a JSON object whose `data`
holds articles with `paragraphs` (the official layout), or flat records `{id,
question, context, answers: {text: [...], answer_start: [...]}}` — as a JSON list,
under `data`, or one per line (JSON lines, as `datasets` writes them).

Every question is checked: it has an id (unique in the file), a question and a
non-empty context; each answer's `answer_start` is an offset into the context where
its text is, character for character; an unanswerable question (v2.0:
`is_impossible`, or no answers) is refused unless `version_2_with_negative`. An error
names the file and the question id. Long contexts are not an error: the windows of
`squad_features` cover them.
"""

import dataclasses
import json
import sys

from keras_bert_app.data.text_files import read_text


@dataclasses.dataclass(frozen=True)
class SquadExample:
    """One question about one context.

    Args:
        qid: the question's id (the key of predictions.json).
        question: the question text.
        context: the paragraph, as in the file (answers are character offsets in it).
        answers: `((text, start_char), ...)`, the gold answers; empty when
            unanswerable. Training uses the first.
        is_impossible: v2.0: the context does not answer the question.
        title: the article's title, if the file has one.
        has_gold: the file gives the question's answers (or says it has none);
            False for questions to predict whose record has no `answers` at all.
    """

    qid: str
    question: str
    context: str
    answers: tuple = ()
    is_impossible: bool = False
    title: str = None
    has_gold: bool = True

    @property
    def answer_texts(self):
        return [text for text, _ in self.answers]


def _load(path):
    # UTF-8 (a leading BOM dropped); a latin-1 or UTF-16 file, or one cut inside a
    # character, is named with the line of its first bad byte.
    text = read_text(path)
    if not text.strip():
        raise ValueError(f"{path} is empty.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            raise ValueError(f"{path} is not JSON: {error}") from None
    records = []  # JSON lines
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not JSON ({error.msg}).") from None
    return records


def _layout(path, content):
    """`("official", articles)` or `("flat", records)`."""
    if isinstance(content, dict) and "question" in content and "context" in content:
        content = [content]  # JSON lines of one record
    items = content.get("data") if isinstance(content, dict) else content
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected SQuAD's JSON (an object with a non-empty "
                         "'data' list) or flat question records; found "
                         f"{type(content).__name__} without them.")
    first = items[0]
    if isinstance(first, dict) and "paragraphs" in first:
        return "official", items
    if isinstance(first, dict) and "question" in first and "context" in first:
        return "flat", items
    keys = sorted(first)[:8] if isinstance(first, dict) else type(first).__name__
    raise ValueError(f"{path}: the first entry of 'data' is neither an article with "
                     f"'paragraphs' nor a record with 'question' and 'context' (it has "
                     f"{keys}).")


def _official_questions(path, articles):
    for a, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f"{path}: data[{a}] has no 'paragraphs' list.")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise ValueError(f"{path}: {where} has no 'qas' list.")
            for q, qa in enumerate(paragraph["qas"]):
                answers = qa.get("answers")
                if answers is not None and not isinstance(answers, list):
                    raise ValueError(f"{path}: {where}.qas[{q}]: 'answers' is not a list.")
                yield (f"{where}.qas[{q}]", qa.get("id"), qa.get("question"),
                       paragraph.get("context"),
                       None if answers is None else
                       [(x.get("text"), x.get("answer_start")) for x in answers],
                       qa.get("is_impossible"), article.get("title"))


def _flat_questions(path, records):
    for r, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {r} is not an object.")
        answers = record.get("answers")
        if answers is not None:
            texts = answers.get("text") if isinstance(answers, dict) else None
            starts = answers.get("answer_start") if isinstance(answers, dict) else None
            if not isinstance(texts, list) or not isinstance(starts, list) or \
                    len(texts) != len(starts):
                raise ValueError(f"{path}: question {record.get('id')!r}: 'answers' must "
                                 "hold lists 'text' and 'answer_start' of equal length.")
            answers = list(zip(texts, starts))
        yield (f"record {r}", record.get("id"), record.get("question"),
               record.get("context"), answers, record.get("is_impossible"),
               record.get("title"))


class BadQuestion(ValueError):
    """A question record that is wrong in itself (what `skip_bad_records` skips);
    the file's layout and the run's settings raise plain ValueErrors."""


def read_squad(path, version_2_with_negative=False, require_answers=True,
               skip_bad_records=False, skipped=None):
    """The `SquadExample`s of a SQuAD file (either layout), in file order.

    Raises ValueError naming the file and question id for: a missing id or a repeated
    one, a missing or empty question or context, an answer whose `answer_start` is not
    where its text is in the context, an answerable question without answers, and an
    unanswerable one unless `version_2_with_negative`. With `require_answers=False`
    (questions to predict) a record without an `answers` field is a question without
    gold (`has_gold=False`); an empty `answers` list still means "unanswerable".

    With `skip_bad_records`, the questions that are wrong in themselves (all the
    above but an unanswerable question without `version_2_with_negative`, which is a
    setting) are skipped, as Google's `run_squad` skips answers it cannot find; their
    count and the first reason are logged, and the reasons appended to `skipped` (a
    list) when given. A file that is not SQuAD at all is an error either way.
    """
    layout, items = _layout(path, _load(path))
    questions = (_official_questions if layout == "official" else _flat_questions)(
        path, items)
    examples, seen, bad = [], set(), []
    for question in questions:
        try:
            examples.append(_checked(path, question, seen, version_2_with_negative,
                                     require_answers))
        except BadQuestion as error:
            if not skip_bad_records:
                raise
            bad.append(str(error))
    if bad:
        print(f"WARNING: skip_bad_records: {path}: skipped {len(bad)} of "
              f"{len(bad) + len(examples)} questions; the first: {bad[0]}",
              file=sys.stderr)
        if skipped is not None:
            skipped.extend(bad)
    if not examples:
        raise ValueError(f"{path} holds no questions" +
                         (f" but the {len(bad)} skipped." if bad else "."))
    return examples


def _checked(path, question_fields, seen, version_2_with_negative, require_answers):
    """One question's `SquadExample`, checked; `seen`: the ids so far (updated)."""
    where, qid, question, context, answers, impossible, title = question_fields
    if not isinstance(qid, (str, int)) or str(qid) == "":
        raise BadQuestion(f"{path}: {where} has no 'id'.")
    qid = str(qid)
    name = f"{path}: question {qid!r}"
    if qid in seen:
        raise BadQuestion(f"{name} occurs twice: ids must be unique.")
    seen.add(qid)
    if not isinstance(question, str) or not question.strip():
        raise BadQuestion(f"{name} has no question text.")
    if not isinstance(context, str):
        raise BadQuestion(f"{name} has no context.")
    if not context.strip():
        raise BadQuestion(f"{name} has an empty context.")
    if answers is None and not impossible:
        if require_answers:
            raise BadQuestion(f"{name} has no 'answers' (training and evaluation "
                              "data give them; is_impossible: true for none).")
        return SquadExample(qid, question, context, (), False, title, has_gold=False)
    checked = []
    for text, start in answers or ():
        if not isinstance(text, str) or not text or not isinstance(start, int) or \
                isinstance(start, bool):
            raise BadQuestion(f"{name}: an answer needs a non-empty 'text' and an "
                              f"integer 'answer_start'; got {text!r} at {start!r}.")
        found = context[start:start + len(text)] if 0 <= start < len(context) else ""
        if found != text:
            raise BadQuestion(f"{name}: answer {text!r} is not at answer_start={start} "
                              f"of the context (there: {found!r}).")
        checked.append((text, start))
    impossible = bool(impossible) if impossible is not None else not checked
    if impossible and not version_2_with_negative:
        raise ValueError(f"{name} is unanswerable (SQuAD v2.0): pass "
                         "version_2_with_negative (--version_2_with_negative).")
    if impossible and checked:
        raise BadQuestion(f"{name} is marked is_impossible but has answers.")
    if not impossible and not checked:
        raise BadQuestion(f"{name} has no answer and is not marked is_impossible.")
    return SquadExample(qid, question, context, tuple(checked), impossible, title)
