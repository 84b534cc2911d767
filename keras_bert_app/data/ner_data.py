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


def read_ner_file(path, tag_column=None, require_tags=True):
    """Reads a CoNLL or JSON lines NER file (see the module doc).

    Args:
        path: the file.
        tag_column: CoNLL: 0-based column of the tag (negative counts from the end);
            None: the last.
        require_tags: every word must have an IOB tag (training and evaluation
            data); False reads the words alone (prediction data: its tags, if any,
            stay in `lines` and are not checked).
    """
    path = os.fspath(path)
    lines = _read_lines(path)
    first = next((line.strip() for line in lines if line.strip()), None)
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
        result = _read_json_lines(path, lines, require_tags)
    else:
        result = _read_conll(path, lines, tag_column, require_tags)
    if not result.sentences:
        raise ValueError(f"{path}: no sentences.")
    if result.tags is not None:
        _to_iob2(result)
    return result


def _read_lines(path):
    from keras_bert_app.data.classification_data import read_text

    text = read_text(path)  # UTF-8 (a bad byte named with its line), BOM dropped
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line end
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_conll(path, lines, tag_column, require_tags):
    first = next(line for line in lines if line.strip())
    separator = "\t" if "\t" in first else " "
    sentences, tags, word_lines = [], [] if require_tags else None, []
    words, sentence_tags, numbers, columns = [], [], [], None

    def close():
        if words:
            sentences.append(list(words))
            word_lines.append(list(numbers))
            if require_tags:
                tags.append(list(sentence_tags))
            words.clear(), sentence_tags.clear(), numbers.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            close()
            continue
        fields = _fields(line, separator)
        if fields[0] == DOCSTART:
            close()
            continue
        if columns is None:
            columns = len(fields)
        if len(fields) != columns or not all(fields):
            raise ValueError(f"{path}:{number}: {len(fields)} columns"
                             + (" (one empty)" if not all(fields) else "")
                             + f" where the file's first word line has {columns}: "
                             f"{line!r:.120}")
        if require_tags:
            tag = _tag_of(path, number, fields, tag_column)
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


def _read_json_lines(path, lines, require_tags):
    # Prediction data (require_tags=False) keeps gold tags that every line has, for
    # predictions.txt's gold column.
    sentences, tags, word_lines = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
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
        if require_tags or (tags is not None and ("tags" in record or "ner" in record)):
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
            tags.append(list(values))
        elif tags is not None:
            tags = None  # prediction data: gold tags only when every line has them
        sentences.append(list(words))
        word_lines.append([number] * len(words))
    return NerFile(path, JSON_LINES, sentences, tags, word_lines, lines)


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


def check_tags(ner_file, label_names, source):
    """Every tag of `ner_file` is one of `label_names` (from `source`, e.g. the
    training file); the error names the file, line and tag."""
    known = set(label_names)
    for sentence, numbers in zip(ner_file.tags, ner_file.word_lines):
        for tag, number in zip(sentence, numbers):
            if tag not in known:
                converted = " (converted from IOB1)" if ner_file.iob1_starts else ""
                raise ValueError(f"{ner_file.path}:{number}: tag {tag!r}{converted} is "
                                 f"not in the label set of {source}: {list(label_names)}.")


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
