"""The one source of truth for names shared across stages.

Feature names, special tokens and output keys are spelled here once; every other module
(models, data readers, exporters, pipelines) imports them instead of repeating strings.
"""

# Encoder inputs: the TF Hub BERT encoder interface.
INPUT_WORD_IDS = "input_word_ids"
INPUT_MASK = "input_mask"
INPUT_TYPE_IDS = "input_type_ids"
ENCODER_INPUTS = (INPUT_WORD_IDS, INPUT_MASK, INPUT_TYPE_IDS)

# Encoder outputs.
SEQUENCE_OUTPUT = "sequence_output"
POOLED_OUTPUT = "pooled_output"
ENCODER_OUTPUTS = "encoder_outputs"

# Pre-training model inputs, outputs and labels. Label names are Google's TFRecord
# feature names so that `create_pretraining_data` records feed `fit` unchanged.
MASKED_LM_POSITIONS = "masked_lm_positions"
MASKED_LM_IDS = "masked_lm_ids"
MASKED_LM_WEIGHTS = "masked_lm_weights"
NEXT_SENTENCE_LABELS = "next_sentence_labels"
MLM_LOGITS = "mlm_logits"
NSP_LOGITS = "nsp_logits"

# Google's TFRecord feature names of pre-training instances (create_pretraining_data.py)
# and the encoder inputs they feed.
RECORD_INPUT_IDS = "input_ids"
RECORD_INPUT_MASK = "input_mask"
RECORD_SEGMENT_IDS = "segment_ids"
RECORD_TO_ENCODER_INPUT = {RECORD_INPUT_IDS: INPUT_WORD_IDS, RECORD_INPUT_MASK: INPUT_MASK,
                           RECORD_SEGMENT_IDS: INPUT_TYPE_IDS}
PRETRAINING_METADATA_FILE = "pretraining_metadata.json"
# Files a training run writes into its model_dir: every setting (at the start, checked
# by a resume) and the evaluation results.
PRETRAINING_RUN_FILE = "pretraining_run.json"
EVAL_RESULTS_FILE = "eval_results.json"
SENTENCE_PREDICTION_MODES = ("nsp", "sop", "none")

# Span labeling (SQuAD-style QA) outputs.
START_LOGITS = "start_logits"
END_LOGITS = "end_logits"

# Token classification: label id of positions that carry no label (padding, special
# tokens, non-first word pieces). Same value as Hugging Face's convention.
IGNORE_LABEL_ID = -100

# Special tokens of a BERT WordPiece vocabulary.
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

# Files of a pre-trained model directory.
BERT_CONFIG_FILE = "bert_config.json"
VOCAB_FILE = "vocab.txt"
TEXT_CONFIG_FILE = "text_config.json"
WEIGHTS_FILE = "model.weights.h5"  # a BertPretrainer's weights (encoder + heads)
TASK_CONFIG_FILE = "task_config.json"  # the task and heads the weights are for

# Tasks and heads recorded in TASK_CONFIG_FILE. The next-sentence head serves NSP and
# sentence-order prediction alike (one 2-way head on the pooled output).
PRETRAINING_TASK = "pretraining"
MASKED_LM_HEAD = "masked_lm"
NEXT_SENTENCE_HEAD = "next_sentence"
# Fine-tuned directories: sentence / sentence-pair classification (and regression).
CLASSIFICATION_TASK = "classification"
CLASSIFIER_HEAD = "classifier"
# Extractive question answering (SQuAD): start/end logits over the window's pieces.
SQUAD_TASK = "squad"
SPAN_HEAD = "span_labeler"
# Token tagging (NER): one label per word, carried by its first piece.
NER_TASK = "ner"
TAGGER_HEAD = "token_classifier"
# The settings a NER model directory records: the step, in pieces, between the
# starts of the windows a sentence longer than max_seq_length is predicted through,
# and the entity rules it was evaluated by (seqeval's strict IOB2, else conlleval's
# chunks), which its export's entity spans follow. (strict_iob2 may be absent:
# directories written before it was recorded; they read as conlleval.)
NER_SETTINGS = ("doc_stride", "strict_iob2")
# run_ner writes these into its model_dir: the run's settings, and the predict file's
# own lines with the predicted tag appended (CoNLL columns).
NER_RUN_FILE = "ner_run.json"
NER_PREDICTIONS_FILE = "predictions.txt"
# Outputs of the text-in NER signature (padded per batch; counts give the lengths).
WORDS = "words"
NUM_WORDS = "num_words"
TAGS = "tags"
WORD_START_CHAR = "word_start_char"
WORD_END_CHAR = "word_end_char"
ENTITY_TEXT = "entity_text"
ENTITY_TYPE = "entity_type"
ENTITY_START_CHAR = "entity_start_char"
ENTITY_END_CHAR = "entity_end_char"
NUM_ENTITIES = "num_entities"
# Sentence embeddings (extract_features --pooling, the embedder export): the last
# layer's [CLS] vector or its mean over real tokens; `embedding` names the vector in
# JSON lines and the embedder signature's output.
CLS_POOLING = "cls"
MEAN_POOLING = "mean"
POOLING_MODES = (CLS_POOLING, MEAN_POOLING)
EMBEDDING = "embedding"
# Multiple choice: each (context, choice) sequence scored, softmax over the choices.
MULTIPLE_CHOICE_TASK = "multiple_choice"
CHOICE_HEAD = "multiple_choice"
MULTIPLE_CHOICE_RUN_FILE = "multiple_choice_run.json"
# The text-in multiple-choice signature's input of choices, string [batch, choices].
CHOICES = "choices"
# The settings a SQuAD model directory records for every later stage (prediction,
# export): windowing and answer selection as it was trained and tuned.
SQUAD_SETTINGS = ("version_2_with_negative", "doc_stride", "max_query_length",
                  "max_answer_length", "n_best_size", "null_score_diff_threshold")
# How a classifier's outputs are read: softmax over classes, independent sigmoids, or
# one score.
SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
# A multi-label answer is every label whose sigmoid probability is above this, joined
# by this separator where one string holds them (predictions.tsv, serving's `label`).
MULTI_LABEL_THRESHOLD = 0.5
MULTI_LABEL_SEPARATOR = ","

# Preprocessing SavedModel: the input key of its serving signature.
SERVING_TEXT_INPUT = "text"
# Text-in task models: the inputs of a task (first text, and second text of pairs),
# the same in `fit` on raw strings, the input files' columns and the serving signature.
TEXT_A = "text_a"
TEXT_B = "text_b"
TEXT_INPUTS = (TEXT_A, TEXT_B)
# Outputs of the text-in classifier signature.
PROBABILITIES = "probabilities"
LABEL = "label"
LABEL_ID = "label_id"
SCORE = "score"
# Fine-tuning writes these into its model_dir beside eval_results.json.
CLASSIFIER_RUN_FILE = "classifier_run.json"
PREDICTIONS_FILE = "predictions.tsv"
# TensorBoard tensor summary in logs/eval: a single-label classifier's int64 [k, k]
# confusion matrix (rows: true label id, columns: predicted) at each evaluation.
CONFUSION_MATRIX_TAG = "confusion_matrix"
# TensorBoard event folders of a training run's model_dir (written by the runners,
# read by keras_bert_app.plots).
TRAIN_LOGS_DIR = "logs/train"
EVAL_LOGS_DIR = "logs/eval"
# run_squad writes these into its model_dir (Google's file names).
SQUAD_RUN_FILE = "squad_run.json"
SQUAD_PREDICTIONS_FILE = "predictions.json"
SQUAD_NBEST_FILE = "nbest_predictions.json"
SQUAD_NULL_ODDS_FILE = "null_odds.json"
# The text-in SQuAD SavedModel: inputs and outputs of its serving signature.
QUESTION = "question"
CONTEXT = "context"
ANSWER = "answer"
START_CHAR = "start_char"
END_CHAR = "end_char"
HAS_ANSWER = "has_answer"
NULL_ODDS = "null_odds"
