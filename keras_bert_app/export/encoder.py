"""Exports a BERT encoder as a SavedModel with TF Hub's BERT encoder interface.

The interface (`hub.KerasLayer`-style consumers, TF Model Garden) is:

- root `__call__(inputs, training=False)`: `inputs` a dict of int32 `[batch, seq]`
  `input_word_ids`, `input_mask`, `input_type_ids`; returns `sequence_output
  [batch, seq, H]`, `pooled_output [batch, H]` and `encoder_outputs` (a list, one
  `[batch, seq, H]` per layer). Traced for `training=False` and `training=True`
  (dropout on, for fine-tuning through the SavedModel).
- `variables`, `trainable_variables`, `regularization_losses` (empty): what
  `hub.KerasLayer(trainable=True)` reads.
- `.mlm` (`encoder_with_mlm` only): `.mlm(inputs, training=False)` with
  `masked_lm_positions [batch, P]` added to the inputs returns the encoder outputs plus
  `mlm_logits [batch, P, vocab]`.
- `vocab_file` (an asset) and `do_lower_case`, as older TF Hub BERT encoders carry them,
  so a consumer can build the matching tokenizer.
- a `serving_default` signature for TF Serving: the three inputs in, `sequence_output`
  and `pooled_output` out (a signature returns tensors, not the per-layer list).

The preprocessing export's outputs are exactly these inputs: the two compose.
"""

import os

import tensorflow as tf

from keras_bert_app import names
from keras_bert_app.export.serving_layout import (WARMUP_TEXTS, check_tensorflow_backend,
                                                  next_version_dir, save_export,
                                                  serving_variables, traced_for_saving,
                                                  write_warmup_requests)
from keras_bert_app.export.serving_ops import checked_export_dir

# Warm-up requests are packed to this length (or the model's position table if shorter).
WARMUP_SEQ_LENGTH = 128


def _input_specs(with_positions=False):
    specs = {name: tf.TensorSpec([None, None], tf.int32, name=name)
             for name in names.ENCODER_INPUTS}
    if with_positions:
        specs[names.MASKED_LM_POSITIONS] = tf.TensorSpec(
            [None, None], tf.int32, name=names.MASKED_LM_POSITIONS)
    return specs


def _encoder_inputs(inputs):
    return {name: inputs[name] for name in names.ENCODER_INPUTS}


class _Untracked:
    """Holds Keras objects out of tf.Module's tracking. The export saves the raw
    tf.Variables its functions read (serving_variables); tracked as Keras objects too,
    every weight would be saved a second time."""

    def __init__(self, **parts):
        self.__dict__.update(parts)


class _MaskedLM(tf.Module):
    """`.mlm(inputs, training=False)`: encoder outputs plus `mlm_logits`."""

    def __init__(self, encoder, mlm_head):
        super().__init__()
        self._keras = _Untracked(encoder=encoder, mlm_head=mlm_head)

    @tf.function(autograph=False)
    def __call__(self, inputs, training=False):
        outputs = dict(self._keras.encoder(_encoder_inputs(inputs), training=training))
        outputs[names.MLM_LOGITS] = self._keras.mlm_head(
            outputs[names.SEQUENCE_OUTPUT], inputs[names.MASKED_LM_POSITIONS],
            training=training)  # [batch, P, vocab]
        return outputs


class _EncoderExport(tf.Module):
    # TF Hub's interface has `variables` and `trainable_variables` as saved lists;
    # these class attributes shadow tf.Module's computed properties of the same names,
    # so that the instance attributes set below are saved.
    variables = None
    trainable_variables = None

    def __init__(self, encoder, vocab_file, do_lower_case, mlm_head=None):
        super().__init__()
        self._keras = _Untracked(encoder=encoder)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(do_lower_case, trainable=False,
                                         name="do_lower_case")
        self.serve = tf.function(self._serve, input_signature=[_input_specs()],
                                 autograph=False)
        if mlm_head is not None:
            self.mlm = _MaskedLM(encoder, mlm_head)
        with traced_for_saving():  # the save reuses these traces
            concrete = [self.__call__.get_concrete_function(_input_specs(), training=flag)
                        for flag in (False, True)]
            if mlm_head is not None:
                concrete += [self.mlm.__call__.get_concrete_function(
                    _input_specs(with_positions=True), training=flag)
                    for flag in (False, True)]
            concrete.append(self.serve.get_concrete_function())
        # The raw tf.Variables the functions read, so that graph-mode loaders (TF
        # Serving) restore them (see serving_variables); training=True also reads the
        # dropout seed state, which is not trainable.
        used = serving_variables(*concrete)
        self.variables = used
        self.trainable_variables = [v for v in used if v.trainable]
        self.regularization_losses = []

    @tf.function(autograph=False)
    def __call__(self, inputs, training=False):
        return self._keras.encoder(_encoder_inputs(inputs), training=training)

    def _serve(self, inputs):
        outputs = self._keras.encoder(inputs, training=False)
        return {names.SEQUENCE_OUTPUT: outputs[names.SEQUENCE_OUTPUT],
                names.POOLED_OUTPUT: outputs[names.POOLED_OUTPUT]}


def export_encoder(export_base, model_dir, with_mlm=False, warmup_texts=None):
    """Writes the encoder of `model_dir` as the next version under `export_base`.

    Args:
        export_base: the directory of versions (TF Serving's `--model_base_path`).
        model_dir: a pre-trained model directory, or a fine-tuned one (its encoder,
            without the task head).
        with_mlm: add `.mlm`, the masked-LM head (pre-trained directories only).
        warmup_texts: strings packed into the warm-up requests; None uses a few
            built-in English sentences.

    Returns:
        The version directory written (`export_base/<n>`), checked to load in stock TF
        Serving 2.19 and later before it moved into place. Needs the TensorFlow Keras
        backend.
    """
    from keras_bert_app.model_dir import load_encoder, load_pretrainer, read_task_config
    from keras_bert_app.text.preprocessor import load_preprocessor

    check_tensorflow_backend("export_encoder")
    task = read_task_config(model_dir)
    mlm_head = None
    if with_mlm:
        if task is not None and task.task != names.PRETRAINING_TASK:
            raise ValueError(f"{model_dir} is a fine-tuned {task.task!r} directory: it has "
                             "no masked-LM head to export (encoder_with_mlm needs a "
                             "pre-trained model directory; export its encoder alone).")
        pretrainer = load_pretrainer(model_dir)
        encoder, mlm_head = pretrainer.encoder, pretrainer.mlm_head
    else:
        encoder = load_encoder(model_dir)
    preprocessor = load_preprocessor(  # checks vocab.txt against text_config.json
        model_dir, seq_length=min(WARMUP_SEQ_LENGTH, encoder.config.max_position_embeddings))
    requests = _warmup_requests(preprocessor, warmup_texts)
    module = _EncoderExport(encoder, os.path.join(model_dir, names.VOCAB_FILE),
                            preprocessor.text_config.do_lower_case, mlm_head=mlm_head)
    version_dir = next_version_dir(export_base)
    with checked_export_dir(version_dir) as scratch:
        save_export(module, scratch)
        write_warmup_requests(scratch, requests)
    return version_dir


def _warmup_requests(preprocessor, warmup_texts):
    """Encoder inputs of each example, then of all of them as one batch."""
    texts = list(WARMUP_TEXTS if warmup_texts is None else warmup_texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"warmup_texts={warmup_texts!r}: expected a non-empty list of "
                         "strings (or None).")
    batches = [[t] for t in texts] + ([texts] if len(texts) > 1 else [])
    return [{k: v.numpy() for k, v in preprocessor(tf.constant(b)).items()}
            for b in batches]
