"""NER data: CoNLL column files and JSON lines, read and checked before any training.

CoNLL: one word per line (`token … TAG`, tab- or space-separated, decided from the
first word line: a tab makes every line tab-separated), a blank line between
sentences, `-DOCSTART-` lines skipped (a sentence boundary), the tag in
`tag_column` (0-based, default the last), the same number of columns on every word
line (conlleval needs that of predictions.txt too). JSON lines:
`{"words": [...], "tags": [...]}` (or `"ner"` for the tags), one sentence a line.
The format is decided from the content: a first non-blank line that is a JSON
object makes a JSON lines file; one that starts with `{`/`[` and ends with `}`/`]`
but is not an object is refused as unclear; anything else is CoNLL columns.

Tags are IOB: `O`, `B-TYPE`, `I-TYPE` (other schemes, e.g. IOBES's `S-`/`E-`, are
refused). A file whose chunks mostly start with `I-` (CoNLL-2003's IOB1: `B-` only
between two adjacent entities of one type) is converted to IOB2 (`I-` that starts a
chunk becomes `B-`); conlleval's chunks are the same before and after.
"""

import dataclasses
import json
import os
import re

from keras_bert_app.data.text_files import read_text, report_skipped

DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
CONLL, JSON_LINES = "conll", "jsonl"
_IOB_TAG = re.compile(r"^[BI]-\S.*$")


@dataclasses.dataclass
class NerFile:
    """One input file, read.

    Args:
        path: the file.
        format: `"conll"` or `"jsonl"`.
        sentences: a list of word lists (str).
        tags: a list of tag lists (IOB2 after any conversion), or None (no tags read).
        word_lines: for each sentence, the 1-based line of each word (JSON lines:
            the sentence's line).
        lines: the file's lines without line ends (what predictions.txt repeats).
        separator: CoNLL: `"\\t"` or `" "` (how predictions.txt appends a column).
        iob1_starts: `I-` tags that started a chunk, converted to `B-` (0: none;
            a file kept as IOB2 reports its count in `stray_inside`).
        stray_inside: IOB2 files: `I-` tags after `O` or another type (kept;
            conlleval starts an entity there, --strict_iob2 does not).
    """

    path: str
    format: str
    sentences: list
    tags: list = None
    word_lines: list = None
    lines: list = None
    separator: str = "\t"
    iob1_starts: int = 0
    stray_inside: int = 0

    @property
    def num_words(self):
        return sum(len(s) for s in self.sentences)


def is_iob_tag(tag):
    """`O`, `B-TYPE` or `I-TYPE`: the one definition the reader, the metrics and the
    export share."""
    return tag == OUTSIDE or bool(_IOB_TAG.match(tag))


def split_tag(tag):
    """`(prefix, type)` of an IOB tag: `("O", None)`, `("B", "PER")`, `("I", "PER")`."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if _IOB_TAG.match(tag):
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} is not an IOB tag (O, B-TYPE, I-TYPE).")


def tag_type(tag):
    """`B-PER` → `PER`; `O` → None."""
    return None if tag == OUTSIDE else tag[2:]


def read_ner_file(path, tag_column=None, require_tags=True, skip_bad_records=False,
                  skipped=None):
    """Reads a CoNLL or JSON lines NER file (see the module doc).

    Args:
        path: the file.
        tag_column: CoNLL: 0-based column of the tag (negative counts from the end);
            None: the last.
        require_tags: every word must have an IOB tag (training and evaluation
            data); False reads the words alone (prediction data: its tags, if any,
            stay in `lines` and are not checked).
        skip_bad_records: training data only (the sentences of evaluation and
            prediction files must line up with their results): a sentence holding a
            bad line (not UTF-8, a column count other than the first word line's, a
            tag that is not IOB; JSON lines: the line) is dropped instead of being an
            error, the count and the first reason logged, the reasons (each naming
            its line) appended to `skipped` (a list) when given. A file whose every
            sentence is bad is an error either way.
    """
    path = os.fspath(path)
    bad_lines = {} if skip_bad_records else None
    dropped = [] if skip_bad_records else None  # (line, reason) of each sentence left out
    lines = _read_lines(path, bad_lines)
    first = next((line.strip() for number, line in enumerate(lines, start=1)
                  if line.strip() and number not in (bad_lines or ())), None)
    if first is None and bad_lines:
        report_skipped(path, [bad_lines[n] for n in sorted(bad_lines)], len(bad_lines),
                       unit="lines")
    if first is None:
        raise ValueError(f"{path}: no sentences (the file is empty).")
    if first[0] in "{[" and first[-1] in "}]":
        try:
            value = json.loads(first)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ValueError(f"{path}: the first line looks like JSON but is not a JSON "
                             "object: expected JSON lines ({\"words\": [...], \"tags\": "
                             "[...]} a line) or CoNLL columns (token … TAG).")
        result = _read_json_lines(path, lines, require_tags, dropped, bad_lines)
    else:
        result = _read_conll(path, lines, tag_column, require_tags, dropped, bad_lines)
    if skip_bad_records:
        reasons = [reason for _, reason in sorted(dropped, key=lambda d: d[0])]
        report_skipped(path, reasons, len(reasons) + len(result.sentences),
                       unit="sentences")
        if skipped is not None:
            skipped.extend(reasons)
    if not result.sentences:
        raise ValueError(f"{path}: no sentences.")
    if result.tags is not None:
        _to_iob2(result)
    return result


def _read_lines(path, bad_lines=None):
    text = read_text(path, bad_lines)  # UTF-8 (a bad byte named with its line), BOM dropped
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line end
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_conll(path, lines, tag_column, require_tags, dropped=None, bad_lines=None):
    """`dropped` (a list: skip_bad_records) takes (line, reason) of each sentence
    holding a bad line — `bad_lines`' (not UTF-8) or one failing a check — instead
    of the error."""
    bad_lines = bad_lines or {}
    first = next(line for number, line in enumerate(lines, start=1)
                 if line.strip() and number not in bad_lines)
    separator = "\t" if "\t" in first else " "
    sentences, tags, word_lines = [], [] if require_tags else None, []
    words, sentence_tags, numbers, columns = [], [], [], None
    problem = []  # (line, reason) of the sentence's first bad line (skip_bad_records)

    def close():
        if problem:
            dropped.append(problem[0])
        elif words:
            sentences.append(list(words))
            word_lines.append(list(numbers))
            if require_tags:
                tags.append(list(sentence_tags))
        words.clear(), sentence_tags.clear(), numbers.clear(), problem.clear()

    for number, line in enumerate(lines, start=1):
        if number in bad_lines:
            problem[:] = problem or [(number, bad_lines[number])]
            continue
        if not line.strip():
            close()
            continue
        fields = _fields(line, separator)
        if fields[0] == DOCSTART:
            close()
            continue
        if columns is None:
            columns = len(fields)
        try:
            if len(fields) != columns or not all(fields):
                raise ValueError(f"{path}:{number}: {len(fields)} columns"
                                 + (" (one empty)" if not all(fields) else "")
                                 + f" where the file's first word line has {columns}: "
                                 f"{line!r:.120}")
            tag = _tag_of(path, number, fields, tag_column) if require_tags else None
        except ValueError as error:
            if dropped is None:
                raise
            problem[:] = problem or [(number, str(error))]
            continue
        sentence_tags.append(tag)
        words.append(fields[0])
        numbers.append(number)
    close()
    return NerFile(path, CONLL, sentences, tags, word_lines, lines, separator)


def _tag_of(path, number, fields, tag_column):
    if len(fields) < 2:
        raise ValueError(f"{path}:{number}: one column ({fields[0]!r}); expected "
                         "`token … TAG` (the tag in --tag_column, default the last).")
    index = len(fields) - 1 if tag_column is None else tag_column
    if not -len(fields) <= index < len(fields) or index in (0, -len(fields)):
        raise ValueError(f"{path}:{number}: tag_column={tag_column} is not a tag column "
                         f"of a line with {len(fields)} columns (0 is the token).")
    tag = fields[index]
    if not is_iob_tag(tag):
        raise ValueError(f"{path}:{number}: tag {tag!r} (column {index % len(fields)}) "
                         "is not an IOB tag (O, B-TYPE, I-TYPE).")
    return tag


def _read_json_lines(path, lines, require_tags, dropped=None, bad_lines=None):
    # Prediction data (require_tags=False) keeps gold tags that every line has, for
    # predictions.txt's gold column. `dropped` (a list: skip_bad_records) takes
    # (line, reason) of each bad line instead of the error.
    sentences, tags, word_lines = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if bad_lines and number in bad_lines:
                raise ValueError(bad_lines[number])
            sentence, sentence_tags = _json_sentence(f"{path}:{number}", line, require_tags,
                                                     tags is not None)
        except ValueError as error:
            if dropped is None:
                raise
            dropped.append((number, str(error)))
            continue
        if sentence_tags is not None:
            tags.append(sentence_tags)
        elif tags is not None:
            tags = None  # prediction data: gold tags only when every line has them
        sentences.append(sentence)
        word_lines.append([number] * len(sentence))
    return NerFile(path, JSON_LINES, sentences, tags, word_lines, lines)


def _json_sentence(where, line, require_tags, want_tags):
    """`(words, tags or None)` of one JSON line, checked."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not a JSON object ({e.msg}); a JSON lines file "
                         "has one object a line.") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: {type(record).__name__}, not a JSON object.")
    words = record.get("words")
    if not isinstance(words, list) or not words or not all(
            isinstance(w, str) and w and not re.search(r"[\t\n\r]", w) for w in words):
        raise ValueError(f"{where}: field 'words' must be a non-empty list of "
                         f"non-empty strings without tabs or line breaks, got "
                         f"{words!r:.120}.")
    if require_tags or (want_tags and ("tags" in record or "ner" in record)):
        if "tags" in record and "ner" in record:
            raise ValueError(f"{where}: both 'tags' and 'ner'; give one.")
        field = "tags" if "tags" in record else "ner"
        values = record.get(field)
        if not isinstance(values, list) or len(values) != len(words):
            raise ValueError(f"{where}: field {field!r} must be a list of "
                             f"{len(words)} tags (one per word), got {values!r:.120}.")
        for index, tag in enumerate(values):
            if not isinstance(tag, str) or not is_iob_tag(tag):
                raise ValueError(f"{where}: {field}[{index}]={tag!r} is not an IOB "
                                 "tag (O, B-TYPE, I-TYPE).")
        return list(words), list(values)
    return list(words), None


def _chunk_starts(tags):
    """`(I- tags that start a chunk, B- tags that start one after O or another type)`
    of one sentence: IOB1 starts chunks with I-, IOB2 with B-."""
    inside = begin = 0
    previous = None
    for tag in tags:
        kind = tag_type(tag)
        if tag.startswith("I-") and kind != previous:
            inside += 1
        elif tag.startswith("B-") and kind != previous:
            begin += 1
        previous = kind
    return inside, begin


def _to_iob2(ner_file):
    """Converts an IOB1 file to IOB2 in place, decided from its content: IOB1 when
    more chunks start with I- than with B- (CoNLL-2003's eng.train: 23,427 to 2)."""
    inside = begin = 0
    for tags in ner_file.tags:
        i, b = _chunk_starts(tags)
        inside, begin = inside + i, begin + b
    if inside <= begin:
        ner_file.stray_inside = inside
        return
    for tags in ner_file.tags:
        previous = None
        for index, tag in enumerate(tags):
            kind = tag_type(tag)
            if tag.startswith("I-") and kind != previous:
                tags[index] = "B-" + kind
            previous = kind
    ner_file.iob1_starts = inside


def read_labels_file(path):
    """Tags in id order, one a line (blank lines ignored); `O` first if missing."""
    path = os.fspath(path)
    labels = []
    for number, line in enumerate(_read_lines(path), start=1):
        tag = line.strip()
        if not tag:
            continue
        if not is_iob_tag(tag):
            raise ValueError(f"{path}:{number}: label {tag!r} is not an IOB tag "
                             "(O, B-TYPE, I-TYPE).")
        if tag in labels:
            raise ValueError(f"{path}:{number}: label {tag!r} is listed twice.")
        labels.append(tag)
    if len(labels) < 1:
        raise ValueError(f"{path}: no labels.")
    return tuple(labels) if OUTSIDE in labels else (OUTSIDE,) + tuple(labels)


def labels_of(ner_file):
    """The tags of a training file: `O` first, the others sorted; both `B-X` and
    `I-X` for every type X it has (a type seen only in one-word entities can still
    be tagged, and evaluated, in longer ones)."""
    tags = {t for sentence in ner_file.tags for t in sentence} - {OUTSIDE}
    types = {t[2:] for t in tags}
    return (OUTSIDE,) + tuple(sorted({f"{p}-{x}" for x in types for p in "BI"}))


def check_tags(ner_file, label_names, source, skip_bad_records=False, skipped=None):
    """Every tag of `ner_file` is one of `label_names` (from `source`, e.g. the
    training file); the error names the file, line and tag. With `skip_bad_records`
    (training data only), the sentences holding another tag are dropped from
    `ner_file` instead, logged and their reasons appended to `skipped` (a list);
    none left is an error."""
    known = set(label_names)
    keep, reasons = [], []
    for sentence, numbers in zip(ner_file.tags, ner_file.word_lines):
        unknown = next(((tag, number) for tag, number in zip(sentence, numbers)
                        if tag not in known), None)
        if unknown is not None:
            converted = " (converted from IOB1)" if ner_file.iob1_starts else ""
            reason = (f"{ner_file.path}:{unknown[1]}: tag {unknown[0]!r}{converted} is "
                      f"not in the label set of {source}: {list(label_names)}.")
            if not skip_bad_records:
                raise ValueError(reason)
            reasons.append(reason)
        keep.append(unknown is None)
    if reasons:
        report_skipped(ner_file.path, reasons, len(keep), unit="sentences")
        for field in ("sentences", "tags", "word_lines"):
            setattr(ner_file, field, [v for v, k in zip(getattr(ner_file, field), keep)
                                      if k])
        if skipped is not None:
            skipped.extend(reasons)


def _docstart_line(line, ner_file):
    """A `-DOCSTART-` line with `O`s added up to the word lines' column count:
    conlleval stops at a line whose column count differs from the first line's."""
    fields = _fields(line, ner_file.separator)
    width = len(_fields(ner_file.lines[ner_file.word_lines[0][0] - 1],
                        ner_file.separator)) if ner_file.word_lines else len(fields)
    return ner_file.separator.join(fields + [OUTSIDE] * (width - len(fields)))


def _fields(line, separator):
    """A CoNLL line's columns (a tab-separated token may hold spaces)."""
    return [f.strip() for f in line.split("\t")] if separator == "\t" else line.split()


def write_predictions(path, ner_file, predicted):
    """predictions.txt: CoNLL input → its own lines, the predicted tag appended as a
    last column (`-DOCSTART-` lines get `O`, blank lines stay blank), so every word
    line has the same columns and conlleval scores the file as it is. JSON lines
    input → CoNLL columns `word [gold] predicted`, a blank line between sentences."""
    by_line = {}
    if ner_file.format == CONLL:
        for numbers, tags in zip(ner_file.word_lines, predicted):
            by_line.update(zip(numbers, tags))
        out = []
        for number, line in enumerate(ner_file.lines, start=1):
            if number in by_line:
                out.append(line.rstrip() + ner_file.separator + by_line[number])
            elif line.strip() and line.split()[0] == DOCSTART:
                out.append(_docstart_line(line, ner_file) + ner_file.separator + OUTSIDE)
            else:
                out.append(line)
    else:
        out = []
        for index, (words, tags) in enumerate(zip(ner_file.sentences, predicted)):
            gold = ner_file.tags[index] if ner_file.tags else [None] * len(words)
            out += ["\t".join([w] + ([g] if g else []) + [t])
                    for w, g, t in zip(words, gold, tags)] + [""]
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in out))
    os.replace(partial, path)
