"""Learning-rate schedules the Keras core lacks."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sr")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `after` over `warmup_steps`, then follows `after` (a rate or a
    schedule, which sees the step count from the start of training)."""

    def __init__(self, after, warmup_steps):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
        self.after = after
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = self.after(step) if callable(self.after) else ops.convert_to_tensor(
            self.after, "float32")
        fraction = ops.minimum(step / self.warmup_steps, 1.0)
        return ops.cast(after, "float32") * fraction

    def get_config(self):
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        if isinstance(after, dict):
            after = keras.saving.deserialize_keras_object(after)
        return cls(after, config["warmup_steps"])
