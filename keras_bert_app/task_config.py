"""`task_config.json`: what the weights of a model directory are for (its task,
heads, labels, sequence length and task settings), written by every stage that
saves a model directory and checked by every stage that reads one."""

import dataclasses
import json
import os

from keras_bert_app import names
from keras_bert_app.files import read_json_file

PRETRAINING_HEADS = (names.MASKED_LM_HEAD, names.NEXT_SENTENCE_HEAD)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """What the weights of a model directory are for: `task_config.json`.

    Pre-training writes `{"task": "pretraining", "heads": ["masked_lm",
    "next_sentence"]}` (no `next_sentence` for masked-LM-only runs). A fine-tuned
    directory records its own task and heads, and the fields a reader needs besides.

    Args:
        task: `"pretraining"`, or the fine-tuning task's name.
        heads: names of the heads whose weights the directory holds, in order.
        label_names: the name of each label id (classifiers, taggers), or None.
        max_seq_length: the sequence length the task was trained with, or None.
        problem_type: classifiers: `single_label`, `multi_label` or `regression`.
        text_inputs: the texts an example has: `["text_a"]` or `["text_a", "text_b"]`.
    """

    task: str
    heads: tuple
    label_names: tuple = None
    max_seq_length: int = None
    problem_type: str = None
    text_inputs: tuple = None
    settings: dict = None

    def __post_init__(self):
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task={self.task!r} must be a non-empty string.")
        for field in ("heads", "label_names", "text_inputs"):
            value = getattr(self, field)
            if value is None and field != "heads":
                continue
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                    not all(isinstance(v, str) and v for v in value) or \
                    len(set(value)) != len(value):
                raise ValueError(f"{field}={value!r} must be a list of distinct names.")
            object.__setattr__(self, field, tuple(value))
        if self.max_seq_length is not None and (
                isinstance(self.max_seq_length, bool) or
                not isinstance(self.max_seq_length, int) or self.max_seq_length < 1):
            raise ValueError(f"max_seq_length={self.max_seq_length!r} must be a "
                             "positive integer.")
        if self.task == names.PRETRAINING_TASK:
            if names.MASKED_LM_HEAD not in self.heads or \
                    not set(self.heads) <= set(PRETRAINING_HEADS):
                raise ValueError(f"heads={list(self.heads)}: pre-training has "
                                 f"{names.MASKED_LM_HEAD!r} and optionally "
                                 f"{names.NEXT_SENTENCE_HEAD!r}.")

        if self.task == names.CLASSIFICATION_TASK:
            self._check_classification()
        if self.task == names.SQUAD_TASK:
            self._check_squad()
        elif self.task == names.NER_TASK:
            self._check_ner()
        elif self.task == names.MULTIPLE_CHOICE_TASK:
            self._check_head(names.CHOICE_HEAD, "A multiple-choice model")
            if self.label_names is not None:
                raise ValueError("A multiple-choice model has no label names (its label "
                                 "is the index of the right choice).")
        if self.settings is not None and self.task not in (names.SQUAD_TASK,
                                                           names.NER_TASK):
            raise ValueError(f"settings are recorded for SQuAD and NER models, not "
                             f"{self.task!r}.")

    def _check_head(self, head, what):
        if self.heads != (head,):
            raise ValueError(f"heads={list(self.heads)}: {what} has the one head "
                             f"{head!r}.")
        if self.max_seq_length is None:
            raise ValueError(f"{what} records its max_seq_length.")

    def _check_ner(self):
        self._check_head(names.TAGGER_HEAD, "A NER model")
        if self.label_names is None or len(self.label_names) < 2:
            raise ValueError(f"label_names={self.label_names!r}: a NER model has at "
                             "least two tags.")
        settings = self.settings or {}
        if set(settings) not in (set(names.NER_SETTINGS), {"doc_stride"}):
            raise ValueError(f"settings={settings!r}: a NER model records exactly "
                             f"{list(names.NER_SETTINGS)}.")
        stride = settings["doc_stride"]
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"settings.doc_stride={stride!r} must be a positive integer.")
        if not isinstance(settings.get("strict_iob2", False), bool):
            raise ValueError(f"settings.strict_iob2={settings['strict_iob2']!r} must be "
                             "true or false.")

    def _check_squad(self):
        if self.heads != (names.SPAN_HEAD,):
            raise ValueError(f"heads={list(self.heads)}: a SQuAD model has the one head "
                             f"{names.SPAN_HEAD!r}.")
        if self.max_seq_length is None:
            raise ValueError("A SQuAD model records its max_seq_length.")
        settings = self.settings or {}
        if set(settings) != set(names.SQUAD_SETTINGS):
            raise ValueError(f"settings={settings!r}: a SQuAD model records exactly "
                             f"{list(names.SQUAD_SETTINGS)}.")
        if not isinstance(settings["version_2_with_negative"], bool):
            raise ValueError("settings.version_2_with_negative must be true or false.")
        for key in ("doc_stride", "max_query_length", "max_answer_length", "n_best_size"):
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"settings.{key}={value!r} must be a positive integer.")
        if settings["max_query_length"] > self.max_seq_length - 4:
            raise ValueError(f"settings.max_query_length={settings['max_query_length']} "
                             "leaves no context piece in max_seq_length="
                             f"{self.max_seq_length}.")
        if isinstance(settings["null_score_diff_threshold"], bool) or not isinstance(
                settings["null_score_diff_threshold"], (int, float)):
            raise ValueError("settings.null_score_diff_threshold must be a number.")

    def _check_classification(self):
        if self.heads != (names.CLASSIFIER_HEAD,):
            raise ValueError(f"heads={list(self.heads)}: a classifier has the one head "
                             f"{names.CLASSIFIER_HEAD!r}.")
        if self.problem_type not in names.PROBLEM_TYPES:
            raise ValueError(f"problem_type={self.problem_type!r}; expected one of "
                             f"{list(names.PROBLEM_TYPES)}.")
        if self.text_inputs not in (names.TEXT_INPUTS[:1], names.TEXT_INPUTS):
            raise ValueError(f"text_inputs={self.text_inputs!r}; expected "
                             f"{list(names.TEXT_INPUTS[:1])} or {list(names.TEXT_INPUTS)}.")
        if self.max_seq_length is None:
            raise ValueError("A classifier records its max_seq_length.")
        regression = self.problem_type == names.REGRESSION
        if regression != (self.label_names is None) or (
                not regression and len(self.label_names) < 2):
            raise ValueError(f"label_names={self.label_names!r}: a {self.problem_type} "
                             "classifier has " + ("none" if regression else
                                                  "at least two") + ".")

    @property
    def num_outputs(self):
        """Outputs of a classifier's head: one per label, or one score."""
        return 1 if self.label_names is None else len(self.label_names)

    @classmethod
    def for_classifier(cls, classifier, label_names, max_seq_length, text_inputs):
        return cls(task=names.CLASSIFICATION_TASK, heads=[names.CLASSIFIER_HEAD],
                   label_names=label_names, max_seq_length=max_seq_length,
                   problem_type=classifier.problem_type, text_inputs=text_inputs)

    @classmethod
    def for_pretrainer(cls, pretrainer):
        heads = [names.MASKED_LM_HEAD]
        if pretrainer.next_sentence_prediction:
            heads.append(names.NEXT_SENTENCE_HEAD)
        return cls(task=names.PRETRAINING_TASK, heads=heads)

    def to_json_file(self, path):
        values = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items() if v is not None}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2)
            f.write("\n")

    @classmethod
    def from_json_file(cls, path):
        path = os.fspath(path)
        values = read_json_file(path)
        known = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict) or set(values) - set(known) or \
                not {"task", "heads"} <= set(values):
            raise ValueError(f"{path}: expected a JSON object with the fields {known} "
                             f"(task and heads required), got {values!r}.")
        try:
            return cls(**values)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
