"""Reading the text files every fine-tuning reader takes: UTF-8 checked line by line
(a bad byte is an error naming the file, line and byte), delimited and JSON-lines
records with their line numbers, and what `skip_bad_records` dropped, reported.

Pure Python: it runs before any graph exists.
"""

import csv
import io
import json
import os
import sys


def show_value(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _not_text(path, number, offset, raw):
    """Why line `number` (bytes `raw`, starting at byte `offset` of the file) is not
    UTF-8 text, naming the file, line and byte; None when it is."""
    try:
        raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as e:
        return f"{path}:{number}: not UTF-8 ({e.reason}, byte {offset + e.start})"
    if b"\x00" in raw:  # valid UTF-8, but how UTF-16 without a BOM (or binary) reads
        return (f"{path}:{number}: not UTF-8 text (a NUL byte at byte "
                f"{offset + raw.index(0)}: UTF-16 or binary?)")
    return None


def read_text(path, bad_lines=None):
    """The text of a UTF-8 file without a leading byte-order mark; a missing file, an
    undecodable byte or a NUL byte (UTF-16 without a BOM decodes as UTF-8 with a NUL
    after every ASCII character) is an error naming the file, the line and the byte.

    With `bad_lines` (a dict, for `skip_bad_records`), such lines are recorded in it
    (1-based line → the error) instead, their text decoded with replacement
    characters and without NULs: the delimiters stay, so the records around them
    still parse, and the reader drops the records holding them."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    if b"\x00" not in data:
        try:
            return data.decode("utf-8-sig")  # drops a leading BOM (MRPC's header has one)
        except UnicodeDecodeError:
            pass  # the line-by-line pass below names the line
    lines, offset = [], 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        reason = _not_text(path, number, offset, raw)
        if reason is not None and bad_lines is None:
            raise ValueError(reason)
        if reason is None:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        else:
            bad_lines[number] = reason
            lines.append(raw.decode("utf-8", "replace").replace("\x00", ""))
        offset += len(raw) + 1
    return "\n".join(lines)


def report_skipped(path, reasons, total, unit="rows"):
    """What `skip_bad_records` dropped from `path`: logged (the count and the first
    reason, which names its line), and an error when that is every record — a file
    with nothing left to train on is a wrong file, not a dirty one."""
    if not reasons:
        return
    if len(reasons) >= total:
        raise ValueError(f"{path}: all {total} {unit} are bad (skip_bad_records leaves "
                         f"nothing to train on); the first: {reasons[0]}")
    print(f"WARNING: skip_bad_records: skipped {len(reasons)} of {total} {unit} of "
          f"{path}; the first: {reasons[0]}", file=sys.stderr)


def _drop_trailing_blank(records, is_blank):
    while records and is_blank(records[-1][1]):
        records.pop()
    return records


def delimited_records(path, text, delimiter, quoting):
    """[(line, fields)]: physical lines split on the delimiter, or csv records (quoted
    fields may span lines; `line` is where the record starts)."""
    if not quoting:
        records = [(i + 1, (line[:-1] if line.endswith("\r") else line).split(delimiter))
                   for i, line in enumerate(text.split("\n"))]
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        records, start = [], 1
        try:
            for fields in reader:
                records.append((start, fields or [""]))
                start = reader.line_num + 1
        except csv.Error as e:
            kind = "CSV" if delimiter == "," else "TSV"
            raise ValueError(f"{path}:{start}: malformed {kind} record ({e})") from None
    return _drop_trailing_blank(records, lambda f: len(f) == 1 and not f[0].strip())


def jsonl_records(path, text, skip_rows, dropped=None, bad_lines=None):
    """[(line, JSON object)] of a JSON-lines text. With `dropped` (a list, for
    `skip_bad_records`), a line that is not a JSON object, or is in `bad_lines`
    (`read_text`'s undecodable lines), is appended to it as (line, reason) and
    left out, instead of being an error."""
    lines = _drop_trailing_blank([(i + 1, line) for i, line in enumerate(text.split("\n"))],
                                 lambda line: not line.strip())[skip_rows:]
    if lines and lines[0][1].lstrip().startswith("["):
        raise ValueError(f"{path}:{lines[0][0]}: a JSON array; expected JSON lines "
                         "(one object a line)")
    records = []
    for line, content in lines:
        try:
            if bad_lines and line in bad_lines:
                raise ValueError(bad_lines[line])
            try:
                record = json.loads(content)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line}: not valid JSON ({e.msg}): "
                                 f"{show_value(content)}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line}: expected a JSON object, got "
                                 f"{show_value(record)}")
        except ValueError as error:
            if dropped is None:
                raise
            dropped.append((line, str(error)))
            continue
        records.append((line, record))
    return records
