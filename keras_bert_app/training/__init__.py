"""Training: optimizers and schedules (strategies, callbacks and runners to come)."""

from keras_bert_app.training.optimizers import WarmupLinearDecay, create_optimizer
