"""BERT's optimizer: AdamW (or LAMB), linear warmup then linear decay, clipping."""

import keras
from keras import ops

from keras_bert_app.replicas import replica_context, sum_over_replicas

OPTIMIZERS = ("adamw", "lamb")
# Variable names exempt from weight decay. Keras matches `variable.name`; in these
# models only LayerNorm weights are called gamma/beta (Google: "LayerNorm", "bias").
NO_WEIGHT_DECAY = ("gamma", "beta", "bias")


@keras.saving.register_keras_serializable(package="keras_bert_app")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Google BERT's schedule: linear warmup to `peak_learning_rate` over
    `num_warmup_steps`, and linear decay from the peak at step 0 to
    `end_learning_rate` at `num_train_steps` (the decay counts from step 0, as in
    Google's `optimization.py`).

    Example:
    >>> schedule = WarmupLinearDecay(1e-4, num_train_steps=10000, num_warmup_steps=100)
    """

    def __init__(self, peak_learning_rate, num_train_steps, num_warmup_steps=0,
                 end_learning_rate=0.0):
        if num_train_steps <= 0 or num_warmup_steps < 0:
            raise ValueError(f"num_train_steps={num_train_steps} must be positive and "
                             f"num_warmup_steps={num_warmup_steps} not negative.")
        self.peak_learning_rate = peak_learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.end_learning_rate = end_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        done = ops.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
        decayed = (self.peak_learning_rate - self.end_learning_rate) * (1.0 - done) \
            + self.end_learning_rate
        if not self.num_warmup_steps:
            return decayed
        warmup = self.peak_learning_rate * step / float(self.num_warmup_steps)
        return ops.where(step < self.num_warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "num_train_steps": self.num_train_steps,
                "num_warmup_steps": self.num_warmup_steps,
                "end_learning_rate": self.end_learning_rate}


class _ClipAfterAllReduce:
    """Under `tf.distribute`, Keras clips each replica's gradients before summing
    them across replicas, so `global_clipnorm` would act on a partial gradient and
    the update would depend on the replica count. Google's BERT clips the summed
    gradient; this sums first (in `_clip_gradients`) and skips Keras' later sum."""

    def _clip_gradients(self, grads):
        context = replica_context()
        if context is not None:
            grads = sum_over_replicas(grads, context)
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars  # already summed in _clip_gradients


@keras.saving.register_keras_serializable(package="keras_bert_app")
class AdamW(_ClipAfterAllReduce, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` that clips the cross-replica gradient."""


@keras.saving.register_keras_serializable(package="keras_bert_app")
class Lamb(_ClipAfterAllReduce, keras.optimizers.Lamb):
    """`keras.optimizers.Lamb` that clips the cross-replica gradient."""


def create_optimizer(learning_rate, num_train_steps, num_warmup_steps=0,
                     optimizer="adamw", weight_decay=0.01, global_clipnorm=1.0,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                     gradient_accumulation_steps=None):
    """The optimizer of BERT pre-training and fine-tuning.

    AdamW (or LAMB) on a `WarmupLinearDecay` schedule; decoupled weight decay on every
    weight except LayerNorm and biases; gradients clipped to global norm
    `global_clipnorm`; optional gradient accumulation over
    `gradient_accumulation_steps` batches. Keras evaluates the schedule at its batch
    counter, also when accumulating, so `num_train_steps` and `num_warmup_steps`
    count batches.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected one of {list(OPTIMIZERS)}.")
    schedule = WarmupLinearDecay(learning_rate, num_train_steps, num_warmup_steps)
    cls = AdamW if optimizer == "adamw" else Lamb
    result = cls(learning_rate=schedule, weight_decay=weight_decay, beta_1=beta_1,
                 beta_2=beta_2, epsilon=epsilon, global_clipnorm=global_clipnorm,
                 gradient_accumulation_steps=gradient_accumulation_steps)
    result.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return result
