"""Sentence and sentence-pair classification data: TSV, CSV and JSON-lines readers with
column selection, GLUE's task layouts, label vocabularies and the predictions file.

Pure Python + NumPy: it runs before any graph exists. Every bad row is reported as
`path:line` with its column and value; no value is guessed, and no row is dropped
(rows read = examples returned) unless training data is read with `skip_bad_records`
(then each dropped row is counted and logged).
"""

import bisect
import dataclasses
import math
import os

import numpy as np

from keras_bert_app import names
from keras_bert_app.data.text_files import (delimited_records, jsonl_records, read_text,
                                            report_skipped, show_value)

PROBLEM_TYPES = names.PROBLEM_TYPES
FILE_FORMATS = ("auto", "tsv", "csv", "jsonl")
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
# Multi-label decisions: a label is predicted when its sigmoid is strictly above this,
# as Keras' binary accuracy decides (`y_pred > threshold`).
MULTI_LABEL_THRESHOLD = names.MULTI_LABEL_THRESHOLD


@dataclasses.dataclass(frozen=True)
class ClassificationExamples:
    """The examples of one file, column by column (each tuple has one entry per row)."""
    path: str
    text_a: tuple
    text_b: tuple = None  # None: single-text task
    # str (single_label), tuple of str (multi_label), float (regression); None: no labels.
    labels: tuple = None
    line_numbers: tuple = ()  # 1-based line of each example (CSV: its record's first line)
    problem_type: str = names.SINGLE_LABEL

    def __len__(self):
        return len(self.text_a)


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
    """Where a file's texts and labels are. Columns are header names, or 0-based indices
    (the only choice without a header; a digit string counts as one then)."""
    file_format: str = "auto"  # auto: from the extension (.tsv, .csv, .jsonl, .json)
    text_a_column: object = None
    text_b_column: object = None  # None: single-text task
    label_column: object = None  # None: no labels (prediction)
    has_header: bool = True  # ignored for JSON lines (keys are the columns)
    label_separator: str = None  # multi_label in TSV/CSV: splits the label cell
    problem_type: str = names.SINGLE_LABEL
    # TSV only: off by default (csv.QUOTE_NONE) because GLUE has bare `"` inside
    # sentences; quoting on merges MRPC's rows. CSV always uses standard quoting.
    quoting: bool = False


def _file_format(path, spec):
    if spec.file_format not in FILE_FORMATS:
        raise ValueError(f"file_format {spec.file_format!r} is not one of {FILE_FORMATS}")
    if spec.file_format != "auto":
        return spec.file_format
    extension = os.path.splitext(path)[1].lower()
    if extension not in _EXTENSIONS:
        raise ValueError(f"{path}: cannot tell the format from the extension "
                         f"{extension!r} (known: {sorted(_EXTENSIONS)}); give the format "
                         "(tsv, csv or jsonl)")
    return _EXTENSIONS[extension]


def _column_key(path, header, column, role):
    """The field index of `column` in a delimited file (a name needs the header)."""
    if isinstance(column, bool) or not isinstance(column, (int, str)):
        raise ValueError(f"{path}: {role} column {column!r} is neither a name nor an index")
    if isinstance(column, int):
        if column < 0 or (header is not None and column >= len(header)):
            raise ValueError(f"{path}: {role} column index {column} is out of range"
                             + (f"; the header's columns are {header}" if header else ""))
        return column
    if header is None:
        raise ValueError(f"{path}: {role} column {column!r} is a name, but the file is "
                         "read without a header: give a 0-based column index")
    matches = [i for i, name in enumerate(header) if name == column]
    if len(matches) != 1:
        problem = "no column" if not matches else "more than one column"
        raise ValueError(f"{path}: {problem} named {column!r} ({role}); the header's "
                         f"columns are {header}")
    return matches[0]


def _columns(path, spec, file_format, header, first_record, require_labels):
    """{role: (column as given, key into a record)} of the columns to read. Required
    labels must be there (the lookup names what is missing); optional ones are read
    when the file has the column."""
    roles = {"text_a": spec.text_a_column, "text_b": spec.text_b_column,
             "label": spec.label_column}
    if roles["text_a"] is None:
        raise ValueError(f"{path}: no text_a column given")
    if roles["label"] is None and require_labels:
        raise ValueError(f"{path}: labels are required but no label column is given")
    if file_format != "jsonl" and header is None:  # digit strings (flags) are indices
        roles = {role: int(c) if isinstance(c, str) and c.isdigit() else c
                 for role, c in roles.items()}
    roles = {role: column for role, column in roles.items() if column is not None}
    label = roles.get("label")
    if file_format == "jsonl":
        for role, column in roles.items():
            if not isinstance(column, str):
                raise ValueError(f"{path}: {role} column {column!r}: JSON lines columns "
                                 "are keys (names)")
        present = label in first_record
    elif header is not None:
        present = label in header if isinstance(label, str) else True
    else:
        present = not isinstance(label, int) or label < len(first_record)
    if not (require_labels or present):
        roles.pop("label", None)
    return {role: (column, column if file_format == "jsonl"
                   else _column_key(path, header, column, role))
            for role, column in roles.items()}


def _label_value(where, spec, value):
    """The label of one cell: str, tuple of str or float by the problem type."""
    if spec.problem_type == names.REGRESSION:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise ValueError(f"{where}: not a finite number: {show_value(value)}")
        return number
    if spec.problem_type == names.MULTI_LABEL and isinstance(value, list):
        parts = value  # JSON lines: a list of names
    elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        value = str(value).strip()
        if spec.problem_type == names.SINGLE_LABEL:
            if not value:
                raise ValueError(f"{where}: empty label")
            return value
        if spec.label_separator is None:
            raise ValueError(f"{where}: multi_label text labels need a label_separator: "
                             f"{show_value(value)}")
        parts = value.split(spec.label_separator) if value else []
    else:
        raise ValueError(f"{where}: not a label name: {show_value(value)}")
    out = []
    for part in parts:
        if (isinstance(part, bool) or not isinstance(part, (str, int))
                or not str(part).strip()):
            raise ValueError(f"{where}: bad label {show_value(part)} in {show_value(value)}")
        if str(part).strip() not in out:
            out.append(str(part).strip())
    return tuple(out)


def _value(path, line, spec, role, column, key, record):
    """The text or label of `record` (fields or a JSON object) in `column`."""
    where = f"{path}:{line}: column {column!r} ({role})"
    if isinstance(record, dict):
        if key not in record:
            raise ValueError(f"{path}:{line}: no key {key!r} ({role}); the record has "
                             f"{sorted(record)}")
    elif key >= len(record):
        raise ValueError(f"{path}:{line}: {len(record)} field(s), too few for column "
                         f"{column!r} ({role}, index {key}): {show_value(record)}")
    value = record[key]
    if role == "label":
        return _label_value(where, spec, value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: not a string: {show_value(value)}")
    if role == "text_a" and not value.strip():
        raise ValueError(f"{where}: empty text: {show_value(value)}")
    return value


def read_examples(path, spec, require_labels=True, skip_rows=0, skip_bad_records=False,
                  label_names=None, skipped=None):
    """Reads the examples of one TSV, CSV or JSON-lines file as `spec` lays it out.

    `skip_rows` records (JSON lines: lines) at the start of the file are skipped before
    the header. With `require_labels=False`, a label column missing from the file (a
    test split) gives `labels=None`. `label_names` (optional): the label set; a label
    outside it is an error naming the line (`label_ids` says the same later).

    `skip_bad_records` (training data only: the rows of an evaluation or prediction
    file must line up with its results) drops a row that is wrong in itself — a
    field count other than the header's, a missing key, a line that is not UTF-8 or
    not JSON, an empty text, a label that does not parse or is outside
    `label_names` — instead of stopping at it; the count and the first reason are
    logged and the reasons (each naming its line) appended to `skipped` (a list)
    when given. A file's layout (its header, malformed CSV quoting, the columns) is
    an error either way, and so is a file whose every row is bad.
    """
    if spec.problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {spec.problem_type!r} is not one of "
                         f"{PROBLEM_TYPES}")
    file_format = _file_format(path, spec)
    if (spec.problem_type == names.MULTI_LABEL and spec.label_column is not None
            and file_format != "jsonl" and not spec.label_separator):
        raise ValueError(f"{path}: multi_label labels in {file_format.upper()} need a "
                         "label_separator (e.g. ',')")
    bad_lines = {} if skip_bad_records else None
    dropped = [] if skip_bad_records else None  # (line, reason) of each row left out
    text = read_text(path, bad_lines)
    header = None
    if file_format == "jsonl":
        records = jsonl_records(path, text, skip_rows, dropped, bad_lines)
    else:
        records = delimited_records(path, text, "," if file_format == "csv" else "\t",
                                     spec.quoting or file_format == "csv")[skip_rows:]
        if spec.has_header and records:
            line, fields = records.pop(0)
            if bad_lines and line in bad_lines:  # the header is the layout: no skipping
                raise ValueError(bad_lines[line])
            header = [name.strip() for name in fields]
    if not records and dropped:
        report_skipped(path, [reason for _, reason in dropped], len(dropped))
    if not records:
        raise ValueError(f"{path}: no examples (an empty file"
                         + (" or only a header)" if header is not None else ")"))
    columns = _columns(path, spec, file_format, header, records[0][1], require_labels)
    known = None if label_names is None or spec.problem_type == names.REGRESSION \
        else tuple(str(name) for name in label_names)
    # A record (CSV: its lines up to the next record's) holding an undecodable line
    # (JSON lines: `jsonl_records` dropped those already).
    bad = sorted(bad_lines or ()) if file_format != "jsonl" else []
    ends = [line for line, _ in records[1:]] + [math.inf]
    values, kept = {role: [] for role in columns}, []
    for (line, record), end in zip(records, ends):
        try:
            first_bad = bisect.bisect_left(bad, line)
            if first_bad < len(bad) and bad[first_bad] < end:
                raise ValueError(bad_lines[bad[first_bad]])
            row = _row(path, line, spec, columns, header, record, known)
        except ValueError as error:
            if not skip_bad_records:
                raise
            dropped.append((line, str(error)))
            continue
        for role, value in row.items():
            values[role].append(value)
        kept.append(line)
    if skip_bad_records:
        reasons = [reason for _, reason in sorted(dropped, key=lambda d: d[0])]
        report_skipped(path, reasons, len(reasons) + len(kept))
        if skipped is not None:
            skipped.extend(reasons)
    optional = {role: tuple(values[role]) if role in values else None
                for role in ("text_b", "label")}
    return ClassificationExamples(
        path=path, text_a=tuple(values["text_a"]), text_b=optional["text_b"],
        labels=optional["label"], line_numbers=tuple(kept),
        problem_type=spec.problem_type)


def _row(path, line, spec, columns, header, record, label_names):
    """{role: value} of one record, checked (a one-line error naming `path:line`)."""
    if header is not None and len(record) != len(header):
        # A tab inside a text (TSV quoting is off) would shift the later columns.
        raise ValueError(f"{path}:{line}: {len(record)} field(s) where the header has "
                         f"{len(header)}: {show_value(record)}")
    row = {role: _value(path, line, spec, role, column, key, record)
           for role, (column, key) in columns.items()}
    if label_names is not None and "label" in row:
        labels = row["label"] if isinstance(row["label"], tuple) else (row["label"],)
        for label in labels:
            if label not in label_names:
                raise ValueError(f"{path}:{line}: unknown label {label!r}; the label "
                                 f"names are {label_names}")
    return row


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """A GLUE task as `download_glue_data.py` ships its folder: Google's run_classifier
    processors' columns, TF Model Garden's names, and the metrics papers report (the
    first is the default `--metric`). Every split is TSV with quoting off."""
    name: str
    label_names: tuple  # None for regression (STS-B)
    problem_type: str
    metrics: tuple
    eval_splits: tuple
    columns: tuple  # train/eval: (text_a, text_b, label), names or indices
    test_columns: tuple  # test: (text_a, text_b); test files have a header, no label
    has_header: bool = True  # train/eval
    test_splits: tuple = ("test",)

    @property
    def splits(self):
        return ("train",) + self.eval_splits + self.test_splits

    def spec(self, split):
        """The ColumnSpec of `split` ("train", an eval split or a test split)."""
        if split in ("train",) + self.eval_splits:
            text_a, text_b, label = self.columns
            return ColumnSpec("tsv", text_a, text_b, label, self.has_header,
                              problem_type=self.problem_type)
        if split in self.test_splits:
            return ColumnSpec("tsv", *self.test_columns, label_column=None,
                              problem_type=self.problem_type)
        raise ValueError(f"GLUE {self.name} has no split {split!r}; its splits are "
                         f"{self.splits}")

    def file(self, data_dir, split):
        """`data_dir/<split>.tsv`; `data_dir` is the task's folder (e.g. glue/SST-2)."""
        self.spec(split)
        path = os.path.join(data_dir, f"{split}.tsv")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"GLUE {self.name} {split} file {path} does not exist "
                                    f"(the task folder holds "
                                    f"{', '.join(s + '.tsv' for s in self.splits)})")
        return path


_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")
_PAIR = ("sentence1", "sentence2")
GLUE_TASKS = {task.name: task for task in (
    # CoLA train/dev: no header; source, label, original mark, sentence.
    GlueTask("CoLA", _BINARY, names.SINGLE_LABEL, ("mcc",), ("dev",),
             (3, None, 1), ("sentence", None), has_header=False),
    GlueTask("SST-2", _BINARY, names.SINGLE_LABEL, ("accuracy",), ("dev",),
             ("sentence", None, "label"), ("sentence", None)),
    GlueTask("MRPC", _BINARY, names.SINGLE_LABEL, ("f1", "accuracy"), ("dev",),
             ("#1 String", "#2 String", "Quality"), ("#1 String", "#2 String")),
    GlueTask("STS-B", None, names.REGRESSION, ("pearson", "spearman"), ("dev",),
             _PAIR + ("score",), _PAIR),
    GlueTask("QQP", _BINARY, names.SINGLE_LABEL, ("f1", "accuracy"), ("dev",),
             ("question1", "question2", "is_duplicate"), ("question1", "question2")),
    # MNLI: label1 (label1..label5 in dev) before gold_label, the last column.
    GlueTask("MNLI", ("contradiction", "entailment", "neutral"), names.SINGLE_LABEL,
             ("accuracy",), ("dev_matched", "dev_mismatched"), _PAIR + ("gold_label",),
             _PAIR, test_splits=("test_matched", "test_mismatched")),
    GlueTask("QNLI", _ENTAILMENT, names.SINGLE_LABEL, ("accuracy",), ("dev",),
             ("question", "sentence", "label"), ("question", "sentence")),
    GlueTask("RTE", _ENTAILMENT, names.SINGLE_LABEL, ("accuracy",), ("dev",),
             _PAIR + ("label",), _PAIR),
    GlueTask("WNLI", _BINARY, names.SINGLE_LABEL, ("accuracy",), ("dev",),
             _PAIR + ("label",), _PAIR),
)}


def _task_key(name):
    return name.lower().replace("-", "").replace("_", "")


def glue_task(name):
    """The GLUE task named as its folder is (case-insensitive, hyphen optional)."""
    for task in GLUE_TASKS.values():
        if _task_key(task.name) == _task_key(str(name)):
            return task
    raise ValueError(f"unknown GLUE task {name!r}; the tasks are {', '.join(GLUE_TASKS)}")


def _flat_labels(examples):
    """(line, label name) for every label of `examples`."""
    if examples.labels is None:
        raise ValueError(f"{examples.path} has no labels")
    if examples.problem_type == names.MULTI_LABEL:
        return [(line, name) for line, labels in zip(examples.line_numbers, examples.labels)
                for name in labels]
    return list(zip(examples.line_numbers, examples.labels))


def _sort_key(labels):
    """Numeric-looking names sort as numbers ("2" < "10"), others as strings."""
    try:
        numbers = {label: float(label) for label in labels}
    except ValueError:
        return lambda label: label
    return lambda label: (numbers[label], label)


def label_names_for(examples, given=None):
    """The label vocabulary: `given` (checked against every label of `examples`), or the
    sorted distinct labels seen. None for regression."""
    if examples.problem_type == names.REGRESSION:
        return None
    if given is not None:
        given = tuple(str(name) for name in given)
        if not given or len(set(given)) != len(given):
            raise ValueError(f"label names must be distinct and not empty: {given}")
        if examples.labels is not None:
            known = set(given)
            for line, label in _flat_labels(examples):
                if label not in known:
                    raise ValueError(f"{examples.path}:{line}: label {label!r} is not "
                                     f"one of the known label names {given}")
        return given
    if examples.labels is None:
        raise ValueError(f"{examples.path} has no labels to take label names from; give "
                         "the label names")
    seen = {label for _, label in _flat_labels(examples)}
    if not seen:
        raise ValueError(f"{examples.path}: no example has a label")
    return tuple(sorted(seen, key=_sort_key(seen)))


def label_ids(examples, label_names):
    """single_label: int32 [n] ids; multi_label: float32 multi-hot [n, len(label_names)];
    regression: float32 [n] scores."""
    if examples.labels is None:
        raise ValueError(f"{examples.path} has no labels")
    if examples.problem_type == names.REGRESSION:
        return np.asarray(examples.labels, np.float32).reshape([len(examples)])
    index = {name: i for i, name in enumerate(label_names)}
    for line, label in _flat_labels(examples):
        if label not in index:
            raise ValueError(f"{examples.path}:{line}: unknown label {label!r}; the label "
                             f"names are {tuple(label_names)}")
    if examples.problem_type == names.SINGLE_LABEL:
        return np.asarray([index[label] for label in examples.labels], np.int32)
    hot = np.zeros([len(examples), len(label_names)], np.float32)
    for row, labels in enumerate(examples.labels):
        hot[row, [index[label] for label in labels]] = 1.0
    return hot


def _cell(value):
    # TSV cells are written unquoted (read back with quoting off), so they cannot hold
    # tabs or line breaks: those become spaces.
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_predictions(path, examples, problem_type, label_names, outputs,
                      label_separator=","):
    """Writes `path` (TSV): index, text_a[, text_b][, label], prediction, prob_<name>...

    `outputs`: probabilities [n, classes] (softmax, or sigmoids for multi_label), or
    scores [n] / [n, 1] for regression. Written whole or not at all (`.partial`, then
    renamed)."""
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {problem_type!r} is not one of {PROBLEM_TYPES}")
    outputs = np.asarray(outputs, np.float64)
    n = len(examples)
    if problem_type == names.REGRESSION:
        if outputs.shape not in ((n,), (n, 1)):
            raise ValueError(f"regression outputs of shape {outputs.shape}; expected "
                             f"({n},)")
        outputs, label_names = outputs.reshape([n, 1]), ()
    elif outputs.shape != (n, len(label_names)):
        raise ValueError(f"outputs of shape {outputs.shape}; expected ({n}, "
                         f"{len(label_names)}) for the label names {tuple(label_names)}")

    def names_of(value):
        return label_separator.join(value) if isinstance(value, tuple) else value

    header = ["index", "text_a"] + (["text_b"] if examples.text_b is not None else [])
    header += (["label"] if examples.labels is not None else []) + ["prediction"]
    header += [f"prob_{name}" for name in label_names]
    rows = []
    for i in range(n):
        row = [i, examples.text_a[i]]
        row += [examples.text_b[i]] if examples.text_b is not None else []
        row += [names_of(examples.labels[i])] if examples.labels is not None else []
        if problem_type == names.REGRESSION:
            row.append(f"{outputs[i, 0]:.7g}")
        elif problem_type == names.MULTI_LABEL:
            row.append(label_separator.join(name for name, p in zip(label_names, outputs[i])
                                            if p > MULTI_LABEL_THRESHOLD))
        else:
            row.append(label_names[int(np.argmax(outputs[i]))])
        row += [f"{p:.7g}" for p in outputs[i]] if problem_type != names.REGRESSION else []
        rows.append("\t".join(_cell(value) for value in row))
    partial = path + ".partial"
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as f:
            f.write("\t".join(header) + "\n" + "".join(row + "\n" for row in rows))
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
