"""The exports the fuzz tests and `benchmarks/fuzz_exports.py` drive: each built once
from a tiny random model on SHAKESPEARE_VOCAB, loaded with `tf.saved_model.load`, and
wrapped as a `Target` (call a batch, check the answer).

Small windows (SQuAD 32 positions, NER 16) so that strings of a few dozen characters
already span several windows; weights at 50x the usual scale (as the savedmodel tests)
so that answers differ between texts.
"""

import atexit
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export import (export_classifier, export_embedder, export_ner,
                                   export_preprocessing, export_squad)
from keras_bert_app.model_dir import save_model_dir
from keras_bert_app.models import (BertClassifier, BertEncoder, BertPretrainer,
                                   BertSpanLabeler, BertTokenClassifier)
from keras_bert_app.task_config import TaskConfig
from keras_bert_app.text.preprocessing_layer import BertTextPreprocessor
from keras_bert_app.text.preprocessor import BertPreprocessor
from keras_bert_app.text.text_config import TextConfig
from keras_bert_app.text.tokenizer import BertTokenizer
from tests.fuzz import strategies as fz
from tests.helpers import SHAKESPEARE_VOCAB, tiny_config

SEQ_LENGTH = 24  # preprocessing, classifiers, embedder
SQUAD_SETTINGS = dict(doc_stride=8, max_query_length=8, max_answer_length=6, n_best_size=5,
                      version_2_with_negative=True, null_score_diff_threshold=0.0)
SQUAD_SEQ_LENGTH = 32
NER_SEQ_LENGTH, NER_STRIDE = 16, 5
NER_LABELS = ("O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER")
CLASS_LABELS = ("negative", "neutral", "positive")
SIGNATURES = ("preprocessing", "classifier", "classifier_pair", "squad", "ner",
              "embedder")


def _encoder(seed):
    keras.utils.set_random_seed(seed)
    return BertEncoder(tiny_config(vocab_size=len(fz.vocab()), initializer_range=1.0))


def _text_config():
    return TextConfig.for_vocab(SHAKESPEARE_VOCAB, do_lower_case=True)


def build(root, name):
    """Exports signature `name` under `root`; returns the SavedModel directory."""
    base = os.path.join(root, name)
    if name == "preprocessing":
        return export_preprocessing(base, BertPreprocessor(
            SHAKESPEARE_VOCAB, _text_config(), default_seq_length=SEQ_LENGTH))
    if name in ("classifier", "classifier_pair"):
        inputs = [names.TEXT_A] if name == "classifier" else list(names.TEXT_INPUTS)
        classifier = BertClassifier(_encoder(1), num_classes=len(CLASS_LABELS),
                                    preprocessor=BertTextPreprocessor(
                                        SHAKESPEARE_VOCAB, sequence_length=SEQ_LENGTH))
        task = TaskConfig.for_classifier(classifier, list(CLASS_LABELS), SEQ_LENGTH, inputs)
        return export_classifier(base, classifier=classifier, task_config=task)
    tokenizer = BertTokenizer(SHAKESPEARE_VOCAB, lower_case=True)
    if name == "squad":
        task = TaskConfig(task=names.SQUAD_TASK, heads=(names.SPAN_HEAD,),
                          max_seq_length=SQUAD_SEQ_LENGTH, settings=dict(SQUAD_SETTINGS))
        return export_squad(base, span_labeler=BertSpanLabeler(_encoder(2)),
                            tokenizer=tokenizer, task_config=task, windows_per_call=16)
    if name == "ner":
        task = TaskConfig(task=names.NER_TASK, heads=(names.TAGGER_HEAD,),
                          label_names=NER_LABELS, max_seq_length=NER_SEQ_LENGTH,
                          settings={"doc_stride": NER_STRIDE})
        return export_ner(base, tagger=BertTokenClassifier(_encoder(3),
                                                            num_classes=len(NER_LABELS)),
                          tokenizer=tokenizer, task_config=task, windows_per_call=16)
    if name == "embedder":
        model_dir = os.path.join(root, "embedder_model")
        save_model_dir(model_dir, BertPretrainer(_encoder(4)), SHAKESPEARE_VOCAB,
                       _text_config())
        return export_embedder(base, model_dir, pooling="mean", normalize=True,
                               max_seq_length=SEQ_LENGTH)
    raise ValueError(f"Unknown signature {name!r}; expected one of {SIGNATURES}.")


class Target:
    """One serving signature: `inputs(texts)` makes a request from a batch of byte
    strings (pairs take `texts` and its rotation), `call` runs it, `check` asserts the
    invariants of the answer."""

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.model = tf.saved_model.load(path)
        self.serve = self.model.signatures["serving_default"]
        self.input_names = sorted(self.serve.structured_input_signature[1])

    def inputs(self, texts, others=None):
        texts = list(texts)
        if len(self.input_names) == 1:
            return {self.input_names[0]: texts}
        if others is None:
            others = texts[1:] + texts[:1]
        first, second = {"classifier_pair": names.TEXT_INPUTS,
                         "squad": (names.QUESTION, names.CONTEXT)}[self.name]
        return {first: texts, second: list(others)}

    def call(self, inputs):
        tensors = {k: tf.constant(v, tf.string, shape=[len(v)]) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in self.serve(**tensors).items()}

    def check(self, inputs, outputs):
        if self.name == "preprocessing":
            fz.check_packed(outputs, [inputs[names.SERVING_TEXT_INPUT]], SEQ_LENGTH)
        elif self.name == "classifier":
            fz.check_classifier(outputs, len(inputs[names.TEXT_A]), CLASS_LABELS)
        elif self.name == "classifier_pair":
            fz.check_classifier(outputs, len(inputs[names.TEXT_A]), CLASS_LABELS)
        elif self.name == "squad":
            fz.check_squad(outputs, inputs[names.QUESTION], inputs[names.CONTEXT])
        elif self.name == "ner":
            fz.check_ner(outputs, inputs[names.SERVING_TEXT_INPUT], NER_LABELS)
        elif self.name == "embedder":
            fz.check_embedding(outputs, len(inputs[names.SERVING_TEXT_INPUT]),
                               hidden=tiny_config().hidden_size, normalized=True)

    def run(self, texts, others=None):
        """Calls and checks one batch; returns the outputs."""
        inputs = self.inputs(texts, others)
        outputs = self.call(inputs)
        self.check(inputs, outputs)
        return outputs


_LOADED = {}


def load_targets(signatures=SIGNATURES):
    """Each of `signatures` built and loaded once per process (the test files of a
    `pytest tests/fuzz` run share them): name → Target."""
    if "root" not in _LOADED:
        _LOADED["root"] = tempfile.mkdtemp(prefix="fuzz_exports_")
        atexit.register(shutil.rmtree, _LOADED["root"], ignore_errors=True)
    for name in signatures:
        if name not in _LOADED:
            _LOADED[name] = Target(name, build(_LOADED["root"], name))
    return {name: _LOADED[name] for name in signatures}
