"""BERT's optimizers: AdamW or LAMB (as in the paper and Model Garden), linear warmup
then linear decay, clipping after the cross-replica sum, accumulation anywhere."""

import re

import keras
from keras import ops

from keras_bert_app.replicas import (cond_across_replicas, replica_context,
                                     sum_over_replicas, synchronises_by_merge_call)

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


class _BertOptimizer:
    """What our AdamW and Lamb add to Keras' optimizers.

    - `exclude_from_weight_decay` (variable-name patterns, `re.search`ed in
      `variable.name`) is a constructor argument and part of `get_config`, so the
      exclusions survive a `.keras` save and load. Keras' method of the same name
      also records its `var_names` there (a `var_list` cannot be serialised).
    - Gradients are clipped after the cross-replica sum. Under `tf.distribute` Keras
      clips each replica's gradients before summing them, so `global_clipnorm` would
      act on a partial gradient and the update would depend on the replica count.
      This sums first (in `_clip_gradients`) and skips Keras' later sum: the update
      is the one device would make on the global batch.
    - Gradient accumulation works under every `tf.distribute` strategy (Keras' own
      branches on the step inside the replica function, which TensorFlow refuses
      there; see `_backend_apply_gradients`).
    """

    def __init__(self, *args, exclude_from_weight_decay=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.exclude_from_weight_decay(var_names=exclude_from_weight_decay)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)
        self._weight_decay_exclusions = list(var_names or ())

    def get_config(self):
        return {**super().get_config(),
                "exclude_from_weight_decay": list(self._weight_decay_exclusions)}

    def _clip_gradients(self, grads):
        context = replica_context()
        if context is not None:
            grads = sum_over_replicas(grads, context)
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars  # already summed in _clip_gradients

    def _backend_apply_gradients(self, grads, trainable_variables):
        # Keras accumulates with `ops.cond(is_update_step, update, accumulate)` in the
        # replica function; under a strategy that synchronises by merge call the
        # update branch's all-reduce and variable updates are refused there. Same
        # branches, but chosen once in cross-replica context.
        if not (self.gradient_accumulation_steps and synchronises_by_merge_call()):
            return super()._backend_apply_gradients(grads, trainable_variables)
        if self.use_ema:
            raise ValueError("use_ema with gradient_accumulation_steps is not supported "
                             "under a tf.distribute strategy.")
        steps = self.gradient_accumulation_steps
        cond_across_replicas(
            lambda: ops.equal((self._iterations + 1) % steps, 0),
            lambda grads: self._update_with_accumulated(grads, trainable_variables),
            lambda grads: self._accumulate(grads, trainable_variables),
            args=(grads,))

    def _update_with_accumulated(self, grads, variables):
        """Keras' update branch: the mean of the k batches' gradients (this replica's
        part; `_clip_gradients` sums the replicas), clipped, applied; accumulators
        reset."""
        steps = self.gradient_accumulation_steps
        grads = [(g + a) / steps for g, a in zip(grads, self._accumulators(variables))]
        grads = self._clip_gradients(grads)
        self._apply_weight_decay(variables)
        self._backend_update_step(grads, variables, self.learning_rate)
        self._backend_reset_gradient_accumulators()

    def _accumulate(self, grads, variables):
        self._backend_increment_gradient_accumulators(grads, self._accumulators(variables))

    def _accumulators(self, variables):
        return [self._accumulated_gradients[self._get_variable_index(v)] for v in variables]


def _fused_adamw(optimizer):
    """TensorFlow's fused AdamW update (`fused_adamw`) where it applies, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    from keras_bert_app.training import fused_adamw

    return fused_adamw if fused_adamw.applies(optimizer) else None


@keras.saving.register_keras_serializable(package="keras_bert_app")
class AdamW(_BertOptimizer, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` (decoupled weight decay, bias-corrected moments) with
    serialisable weight-decay exclusions, clipping of the cross-replica gradient and
    accumulation under every strategy. On TensorFlow without a strategy the update
    runs as fused ops (`fused_adamw`: the same arithmetic, a third of the graph).

    Example:
    >>> optimizer = AdamW(1e-4, weight_decay=0.01, global_clipnorm=1.0,
    ...                   exclude_from_weight_decay=["gamma", "beta", "bias"])
    """

    def _apply_weight_decay(self, variables):
        fused = _fused_adamw(self)
        if fused is None:
            return super()._apply_weight_decay(variables)
        fused.apply_weight_decay(self, variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        fused = _fused_adamw(self)
        if fused is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        # (Keras' hook, called as Keras calls it: ours returns the gradients as they are.)
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        fused.update(self, [g for g, _ in grads_and_vars], [v for _, v in grads_and_vars],
                     learning_rate)


@keras.saving.register_keras_serializable(package="keras_bert_app")
class Lamb(_BertOptimizer, keras.optimizers.Lamb):
    """LAMB as in the paper (You et al., 2019, arXiv:1904.00962) and TF Model Garden's
    `official/modeling/optimization/lamb.py`.

    Per variable w, with the bias-corrected Adam moments m_hat and v_hat:

        r = m_hat / (sqrt(v_hat) + epsilon) + weight_decay * w   (decay: decayed w only)
        ratio = ||w|| / ||r||   (1 where either norm is 0; 1 for excluded w)
        w <- w - learning_rate * ratio * r

    The decay is inside the trust ratio, not applied again by Keras' decoupled decay
    (`keras.optimizers.Lamb` decays outside the ratio and adapts every variable).
    Variables whose name matches `exclude_from_weight_decay` are not decayed; those
    matching `exclude_from_layer_adaptation` get ratio 1. `exclude_from_layer_adaptation`
    None means the weight-decay exclusions (as in Model Garden); `[]` adapts all.

    Example:
    >>> optimizer = Lamb(1e-3, weight_decay=0.01,
    ...                  exclude_from_weight_decay=["gamma", "beta", "bias"])
    """

    def __init__(self, *args, exclude_from_layer_adaptation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.exclude_from_layer_adaptation = (
            None if exclude_from_layer_adaptation is None
            else list(exclude_from_layer_adaptation))

    def get_config(self):
        return {**super().get_config(),
                "exclude_from_layer_adaptation": self.exclude_from_layer_adaptation}

    def _apply_weight_decay(self, variables):
        return  # the decay is part of `update_step`'s r, inside the trust ratio

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        # `iterations` counts updates (not batches) when accumulating.
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, ops.add(ops.multiply(m, beta_1), ops.multiply(gradient, 1 - beta_1)))
        self.assign(v, ops.add(ops.multiply(v, beta_2),
                               ops.multiply(ops.square(gradient), 1 - beta_2)))
        m_hat = ops.divide(m, 1 - ops.power(beta_1, step))
        v_hat = ops.divide(v, 1 - ops.power(beta_2, step))
        update = ops.divide(m_hat, ops.add(ops.sqrt(v_hat), ops.cast(self.epsilon, dtype)))
        # Decide by the Keras variable: under tf.distribute `variable` is one replica's
        # copy, whose name may carry a replica suffix.
        model_variable = self._trainable_variables[index]
        if self.weight_decay and self._use_weight_decay(model_variable):
            update = ops.add(update, ops.multiply(ops.cast(self.weight_decay, dtype),
                                                  variable))
        if self._use_layer_adaptation(model_variable):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            r_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(ops.logical_and(w_norm > 0, r_norm > 0),
                              ops.divide(w_norm, r_norm), 1.0)
            update = ops.multiply(ops.cast(ratio, dtype), update)
        self.assign_sub(variable, ops.multiply(lr, update))

    def _use_layer_adaptation(self, variable):
        patterns = self.exclude_from_layer_adaptation
        if patterns is None:
            patterns = self._weight_decay_exclusions
        return not any(re.search(pattern, variable.name) for pattern in patterns)


def create_optimizer(learning_rate, num_train_steps, num_warmup_steps=0,
                     optimizer="adamw", weight_decay=0.01, global_clipnorm=1.0,
                     beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                     gradient_accumulation_steps=None):
    """The optimizer of BERT pre-training and fine-tuning.

    AdamW (or LAMB) on a `WarmupLinearDecay` schedule; weight decay on every weight
    except LayerNorm and biases (which LAMB also leaves out of layer adaptation), kept
    in the optimizer's config; gradients clipped to global norm `global_clipnorm`
    after the cross-replica sum; optional gradient accumulation over
    `gradient_accumulation_steps` batches, under any distribution: the update after k
    batches uses the mean of their gradients. Keras evaluates the schedule at its
    batch counter, also when accumulating, so `num_train_steps` and
    `num_warmup_steps` count batches (the optimizer's `iterations` counts updates).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected one of {list(OPTIMIZERS)}.")
    schedule = WarmupLinearDecay(learning_rate, num_train_steps, num_warmup_steps)
    cls = AdamW if optimizer == "adamw" else Lamb
    return cls(learning_rate=schedule, weight_decay=weight_decay, beta_1=beta_1,
               beta_2=beta_2, epsilon=epsilon, global_clipnorm=global_clipnorm,
               gradient_accumulation_steps=gradient_accumulation_steps,
               exclude_from_weight_decay=list(NO_WEIGHT_DECAY))
