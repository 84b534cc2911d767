"""Documents of a text shard, in either of the two layouts pre-training corpora come in,
decided from the shard's content (never from its name):

- Google's: one sentence per line, a blank line between documents
  (`create_pretraining_data.py`'s input).
- WikiExtractor's: `<doc id=… url=… title=…>` … `</doc>` around each article, the
  title on its first line, one paragraph per line. The title line is dropped and the
  paragraphs are split into sentences (`split_sentences`), because the NSP/SOP
  algorithm cuts A and B at sentence boundaries: whole paragraphs would make most
  segments one unit and most instances truncated.

Pure Python over decoded lines, so both the single-process tool and the Beam pipeline
read shards the same way. Lines that are not UTF-8 are an error naming the file, line
and byte, or are dropped and counted.
"""

import re

GOOGLE = "google"
WIKIEXTRACTOR = "wikiextractor"
_DOC_OPEN = re.compile(r'^<doc\b[^>]*>$')
_TITLE = re.compile(r'\btitle="([^"]*)"')

# A sentence ends at . ! or ? (with any closing quotes or brackets) followed by space
# and a capital letter, a digit or an opening quote/bracket...
_END = re.compile(r'[.!?]+["\'\u201d\u2019)\]]*(?=\s+["\'\u201c\u2018(\[]?\w)')
# ...unless the word before the full stop is one of these abbreviations or a single
# capital (an initial, as in "J. R. R. Tolkien").
_ABBREVIATIONS = frozenset("""mr mrs ms dr prof st jr sr vs etc inc ltd co corp no vol
fig al gen col lt sgt capt rev hon mt ft approx dept est jan feb mar apr jun jul aug
sep sept oct nov dec e.g i.e u.s u.k""".split())


SKIP_ADVICE = ("re-encode the file as UTF-8, or pass skip_bad_records "
               "(--skip_bad_records) to drop such lines.")
DROPPED = "re-encode the file as UTF-8 to use such lines; they were dropped."


def decode_line(path, number, offset, raw, advice=SKIP_ADVICE):
    """One line of an input file as text; an error naming the file, the line and the
    byte when it is not UTF-8 (a latin-1 or UTF-16 file, or one cut inside a
    character), ending with `advice`. Google's reader drops such bytes silently
    (`errors="ignore"`): a UTF-16 corpus would then be "pre-trained" on its every
    other byte."""
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}:{number}: not UTF-8 ({error.reason}, byte "
                         f"{offset + error.start} of the file); {advice}") from None
    if "\x00" in text:  # valid UTF-8, but UTF-16 without a BOM (or binary) reads so
        raise ValueError(f"{path}:{number}: not UTF-8 text (a NUL byte, byte "
                         f"{offset + raw.index(0)} of the file: UTF-16 or binary?); "
                         f"{advice}")
    return text


def split_sentences(paragraph):
    """`paragraph` (one line of text) as a list of sentences.

    A rule-based splitter (no model, no download): it ends a sentence at `.`, `!` or
    `?` followed by white space and an upper-case letter or digit, except after
    common abbreviations and initials. Errs towards too few splits, which costs the
    NSP/SOP algorithm nothing but coarser A/B cuts.

    >>> split_sentences("Dr. Smith arrived. He left at 5 p.m. on Monday! Why?")
    ['Dr. Smith arrived.', 'He left at 5 p.m. on Monday!', 'Why?']
    """
    sentences, start = [], 0
    for match in _END.finditer(paragraph):
        after = paragraph[match.end():].lstrip()
        first = after.lstrip("\"'\u201c\u2018([")[:1]
        if not (first.isupper() or first.isdigit()):
            continue
        if match.group().startswith("."):
            word = paragraph[start:match.start()].rsplit(None, 1)
            word = word[-1].lstrip("\"'\u201c\u2018([") if word else ""
            if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
                continue
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    rest = paragraph[start:].strip()
    if rest:
        sentences.append(rest)
    return [s for s in sentences if s]


class ShardReader:
    """Reads the documents of one shard from its raw lines (bytes).

    Args:
        path: the shard's name, for messages.
        strict: raise the error naming the first line that is not UTF-8, instead of
            dropping and counting such lines.
        advice: how the error message ends (what the user can do).

    `documents(raw_lines)` yields each document as a list of sentences (strings);
    afterwards these attributes describe the shard:
        layout: `GOOGLE` or `WIKIEXTRACTOR` (None for a shard with no text line).
        bad_lines: lines dropped because they are not UTF-8 (or hold a NUL).
        first_error: the message naming the first of them.
        stray_lines: non-blank lines outside `<doc>` … `</doc>` (WikiExtractor),
            dropped.
        lines: lines read.
    """

    def __init__(self, path, strict=False, advice=SKIP_ADVICE):
        self.path = path
        self.strict = strict
        self.advice = advice
        self.layout = None
        self.bad_lines = 0
        self.first_error = None
        self.stray_lines = 0
        self.lines = 0

    def _text_lines(self, raw_lines):
        offset = 0
        for number, raw in enumerate(raw_lines, start=1):
            self.lines = number
            try:
                yield decode_line(self.path, number, offset, raw, self.advice).strip()
            except ValueError as error:
                if self.strict:
                    raise
                self.bad_lines += 1
                self.first_error = self.first_error or str(error)
            finally:
                offset += len(raw)

    def documents(self, raw_lines):
        lines = self._text_lines(raw_lines)
        for line in lines:
            if line:
                self.layout = WIKIEXTRACTOR if _DOC_OPEN.match(line) else GOOGLE
                first = line
                break
        else:
            return
        if self.layout == GOOGLE:
            yield from self._google([first], lines)
        else:
            yield from self._wikiextractor(first, lines)

    def _google(self, document, lines):
        for line in lines:
            if line:
                document.append(line)
            elif document:
                yield document
                document = []
        if document:
            yield document

    def _wikiextractor(self, opening, lines):
        document, title, inside = [], None, False
        line = opening
        while line is not None:
            if _DOC_OPEN.match(line):
                if inside and document:  # a <doc> without </doc>: end it here
                    yield document
                found = _TITLE.search(line)
                document, title, inside = [], found.group(1) if found else None, True
            elif line == "</doc>":
                if document:
                    yield document
                document, inside = [], False
            elif line and not inside:
                self.stray_lines += 1
            elif line:
                if title is not None and not document and line == title.strip():
                    title = None  # the title line, not text
                else:
                    document.extend(split_sentences(line))
            line = next(lines, None)
        if inside and document:
            yield document
