"""Multiple-choice examples: SWAG's CSV layout and JSON lines with any number of
choices, checked as they are read; and real multiple-choice data made from SQuAD.

Which layout a file is in is decided from its content: a first non-blank character
`{` is JSON lines, anything else SWAG's CSV (a header row naming `sent1`, `sent2`,
`ending0`, `ending1`, …, and `label`).

Every example is (context, question, choices, label), scored as BERT pairs
`[CLS] context [SEP] question + " " + choice [SEP]`: Hugging Face's `run_swag`
pairs SWAG's `sent1` with `sent2 + " " + ending_i`, so SWAG's `sent1` is the context
and `sent2` the question. The question goes with the choice, not the context: the
pair trimming cuts the longer segment first, so a long context is what gets cut,
never the question.

Pure Python: it runs before any graph exists. A bad record is an error naming
`path:line` and the field; no record is dropped unless training data is read with
`skip_bad_records` (then each is counted and logged).
"""

import bisect
import dataclasses
import json
import os
import random

from keras_bert_app.data.text_files import (delimited_records, jsonl_records, read_text,
                                            report_skipped, show_value)

# SWAG's columns (Hugging Face `datasets` "swag", `run_swag.py`); its other columns
# (video-id, fold-ind, startphrase, gold-source) are not read.
SWAG_CONTEXT, SWAG_QUESTION, SWAG_ENDING, SWAG_LABEL = "sent1", "sent2", "ending", "label"
# JSON lines keys.
CONTEXT, QUESTION, CHOICES, LABEL = "context", "question", "choices", "label"
MIN_CHOICES = 2


@dataclasses.dataclass(frozen=True)
class MultipleChoiceExample:
    """One question: its context, optional question ("" for none), the choices (two
    or more non-empty texts) and the 0-based index of the right one (None in a file
    to predict without labels); `line` is where its record starts in the file."""

    context: str
    question: str
    choices: tuple
    label: int = None
    line: int = 0

    def second_segments(self):
        """The second text of each choice's pair: `question + " " + choice`."""
        return [f"{self.question} {c}" if self.question else c for c in self.choices]


def read_multiple_choice(path, require_labels=True, skip_bad_records=False, skipped=None):
    """The examples of a SWAG-layout CSV or a JSON-lines file (decided from its
    content). With `require_labels=False` (a file to predict) labels may be absent
    or blank (SWAG's test split: -1); when given, they are checked all the same.

    `skip_bad_records` (training data only: evaluation and prediction rows must line
    up with their results) drops a record that is wrong in itself (a field count
    other than the header's, a line that is not UTF-8 or not JSON, a missing key,
    an empty context or choice, a label that is no index or out of range) instead
    of stopping at it: logged with the count and the first reason, the reasons
    (each naming its line) appended to `skipped` (a list) when given. The header,
    malformed CSV quoting and a file whose every record is bad are errors either
    way."""
    path = os.fspath(path)
    bad_lines = {} if skip_bad_records else None
    dropped = [] if skip_bad_records else None  # (line, reason) of each record left out
    text = read_text(path, bad_lines)
    if not text.strip():
        raise ValueError(f"{path} is empty")
    if text.lstrip().startswith("{"):
        examples = []
        for line, record in jsonl_records(path, text, 0, dropped, bad_lines):
            example = _kept(path, line, dropped, _json_example, record, require_labels)
            examples += [example] if example is not None else []
    else:
        examples = _swag_examples(path, text, require_labels, dropped, bad_lines)
    if skip_bad_records:
        reasons = [reason for _, reason in sorted(dropped, key=lambda d: d[0])]
        report_skipped(path, reasons, len(reasons) + len(examples), unit="records")
        if skipped is not None:
            skipped.extend(reasons)
    if not examples:
        raise ValueError(f"{path} has a header but no examples")
    return examples


def _kept(path, line, dropped, make, *args):
    """`make(path, line, *args)`, or None when it is bad and `dropped` (a list:
    skip_bad_records) takes its (line, reason)."""
    try:
        return make(path, line, *args)
    except ValueError as error:
        if dropped is None:
            raise
        dropped.append((line, str(error)))
        return None


def _swag_examples(path, text, require_labels, dropped=None, bad_lines=None):
    records = delimited_records(path, text, ",", quoting=True)
    header_line, header = records[0]
    if bad_lines and header_line in bad_lines:  # the header is the layout: no skipping
        raise ValueError(bad_lines[header_line])
    header = [h.strip() for h in header]
    endings = []
    while f"{SWAG_ENDING}{len(endings)}" in header:
        endings.append(header.index(f"{SWAG_ENDING}{len(endings)}"))
    missing = [c for c in (SWAG_CONTEXT, SWAG_QUESTION) if c not in header]
    if missing or len(endings) < MIN_CHOICES:
        raise ValueError(
            f"{path}:{header_line}: neither JSON lines nor SWAG's CSV layout: the header "
            f"{show_value(header, 200)} lacks "
            + ", ".join(missing + ([] if len(endings) >= MIN_CHOICES else
                                   [f"{SWAG_ENDING}0 and {SWAG_ENDING}1"]))
            + f" (SWAG: {SWAG_CONTEXT}, {SWAG_QUESTION}, {SWAG_ENDING}0..3, "
            f"{SWAG_LABEL}; JSON lines: one {{\"{CONTEXT}\", \"{CHOICES}\", "
            f"\"{LABEL}\"}} object a line)")
    if SWAG_LABEL not in header and require_labels:
        raise ValueError(f"{path}:{header_line}: no {SWAG_LABEL!r} column; the header "
                         f"is {show_value(header, 200)}")
    columns = {name: header.index(name) for name in (SWAG_CONTEXT, SWAG_QUESTION,
                                                     SWAG_LABEL) if name in header}
    # A record (its lines up to the next record's) holding an undecodable line.
    bad = sorted(bad_lines or ())
    ends = [line for line, _ in records[2:]] + [float("inf")]

    def example(path, line, fields, end):
        first_bad = bisect.bisect_left(bad, line)
        if first_bad < len(bad) and bad[first_bad] < end:
            raise ValueError(bad_lines[bad[first_bad]])
        if len(fields) != len(header):
            raise ValueError(f"{path}:{line}: {len(fields)} fields; the header has "
                             f"{len(header)}: {show_value(fields)}")
        choices = [fields[i] for i in endings]
        label = fields[columns[SWAG_LABEL]] if SWAG_LABEL in columns else None
        return _example(
            path, line, fields[columns[SWAG_CONTEXT]], fields[columns[SWAG_QUESTION]],
            choices, _swag_label(path, line, label, require_labels), require_labels,
            {"context": SWAG_CONTEXT, "question": SWAG_QUESTION,
             "choice": SWAG_ENDING + "{}"})

    examples = [_kept(path, line, dropped, example, fields, end)
                for (line, fields), end in zip(records[1:], ends)]
    return [e for e in examples if e is not None]


def _swag_label(path, line, value, require_labels):
    if value is None or (not require_labels and value.strip() in ("", "-1")):
        return None  # a test split: no label, or Hugging Face's -1
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{path}:{line}: {SWAG_LABEL} {show_value(value)} is not a choice "
                         "index (0-based)") from None


def _json_example(path, line, record, require_labels):
    for key in (CONTEXT, CHOICES) + ((LABEL,) if require_labels else ()):
        if key not in record:
            raise ValueError(f"{path}:{line}: no key {key!r}; the record has "
                             f"{sorted(record)} (expected {CONTEXT}, {QUESTION} "
                             f"(optional), {CHOICES}, {LABEL})")
    choices = record[CHOICES]
    if not isinstance(choices, list):
        raise ValueError(f"{path}:{line}: {CHOICES} is not a list: {show_value(choices)}")
    label = record.get(LABEL)
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ValueError(f"{path}:{line}: {LABEL} {show_value(label)} is not a choice index "
                         "(an integer, 0-based)")
    question = record.get(QUESTION, "")
    return _example(path, line, record[CONTEXT], "" if question is None else question,
                    choices, label, require_labels,
                    {"context": CONTEXT, "question": QUESTION, "choice": CHOICES + "[{}]"})


def _example(path, line, context, question, choices, label, require_labels, keys):
    """Checks one example's fields; `keys` names them as the file does."""
    for role in ("context", "question"):
        value = context if role == "context" else question
        if not isinstance(value, str):
            raise ValueError(f"{path}:{line}: {keys[role]} is not a string: "
                             f"{show_value(value)}")
    if not context.strip():
        raise ValueError(f"{path}:{line}: {keys['context']} is empty")
    if len(choices) < MIN_CHOICES:
        raise ValueError(f"{path}:{line}: {len(choices)} choice(s); a question needs at "
                         f"least {MIN_CHOICES}")
    for i, choice in enumerate(choices):
        # An empty choice is refused: the export reads "" as a padding choice.
        if not isinstance(choice, str) or not choice.strip():
            raise ValueError(f"{path}:{line}: {keys['choice'].format(i)} is "
                             f"{'empty' if isinstance(choice, str) else 'not a string'}"
                             f": {show_value(choice)}")
    if label is None and require_labels:
        raise ValueError(f"{path}:{line}: no label")
    if label is not None and not 0 <= label < len(choices):
        raise ValueError(f"{path}:{line}: label {label} is out of range for "
                         f"{len(choices)} choices (a 0-based index)")
    return MultipleChoiceExample(context=context, question=question.strip(),
                                 choices=tuple(choices), label=label, line=line)


# ------------------------------------------------------ multiple choice from SQuAD


DISTRACTORS = ("paragraph", "article")


def squad_to_multiple_choice(squad_examples, num_choices=4, seed=0,
                             distractors="paragraph"):
    """Multiple-choice questions from SQuAD questions (`read_squad`'s examples): the
    context is the paragraph, the question SQuAD's, the choices its first answer and
    `num_choices - 1` answers of *other* questions, at a random position.

    `distractors="paragraph"`: the wrong choices are answers of other questions about
    the same paragraph first (spans of the same context: which one appears in the
    text says nothing, the question decides), then, when the paragraph has too few,
    of other paragraphs of the same article (same `title`). `"article"`: drawn from
    all other answers of the article alike (easier: most wrong choices are not in the
    paragraph, so "the choice that appears in the text" is nearly always right).
    Distractors that equal, contain or are contained
    in the right answer (case-insensitive) are never drawn; a question whose article
    has too few other answers is skipped. Deterministic for a given `seed` and input
    order.

    Returns:
        A list of JSON-lines records `{"id", "context", "question", "choices",
        "label"}`, in the input's order.
    """
    if num_choices < MIN_CHOICES:
        raise ValueError(f"num_choices={num_choices} must be at least {MIN_CHOICES}.")
    if distractors not in DISTRACTORS:
        raise ValueError(f"distractors={distractors!r}; expected one of "
                         f"{list(DISTRACTORS)}.")
    rng = random.Random(seed)
    by_article, by_paragraph = {}, {}  # distinct answers, in order of appearance
    for e in squad_examples:
        if e.answers:
            text = e.answers[0][0]
            by_article.setdefault(e.title, {}).setdefault(_norm(text), text)
            by_paragraph.setdefault((e.title, e.context), {}).setdefault(_norm(text), text)
    records = []
    for e in squad_examples:
        if not e.answers:
            continue  # SQuAD v2.0's unanswerable questions
        right = e.answers[0][0]
        key = _norm(right)

        def distinct(answers):
            return [text for norm, text in answers.items()
                    if norm and key and norm not in key and key not in norm]

        same = distinct(by_paragraph[(e.title, e.context)]) \
            if distractors == "paragraph" else []
        other = [t for t in distinct(by_article[e.title]) if t not in same]
        need = num_choices - 1
        if len(same) + len(other) < need:
            continue
        choices = rng.sample(same, min(need, len(same)))
        choices += rng.sample(other, need - len(choices))
        rng.shuffle(choices)
        label = rng.randrange(num_choices)
        choices.insert(label, right)
        records.append({"id": e.qid, CONTEXT: e.context, QUESTION: e.question,
                        CHOICES: choices, LABEL: label})
    return records


def _norm(text):
    return " ".join(text.lower().split())


def write_jsonl(path, records):
    """Writes `records` as JSON lines (UTF-8, one object a line), whole or not at
    all."""
    partial = os.fspath(path) + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)


def split_by_title(squad_examples, held_out):
    """`(train, held_out)`: the questions of the last `held_out` articles (by first
    appearance) held out, so no paragraph is in both."""
    titles = list(dict.fromkeys(e.title for e in squad_examples))
    if not 0 < held_out < len(titles):
        raise ValueError(f"held_out={held_out}: the data has {len(titles)} articles; "
                         "hold out at least one and keep at least one.")
    kept = set(titles[:len(titles) - held_out])
    return ([e for e in squad_examples if e.title in kept],
            [e for e in squad_examples if e.title not in kept])
