import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sr")
class PyTorchAdam(keras.optimizers.Optimizer):
    """Adam exactly as `torch.optim.Adam` computes it, the optimizer of the papers' reference
    code (BasicSR trained ESRGAN with it).

    Kingma & Ba 2015, Algorithm 1. Keras' `Adam` folds the bias corrections into the step size
    and adds epsilon to the uncorrected sqrt(v), which amounts to an epsilon 1 / sqrt(1 -
    beta_2^t) times larger early on (10x at the first step with beta_2 = 0.99): weights whose
    gradients are near epsilon then move by up to half as much as in PyTorch. Here epsilon is
    added to the corrected sqrt(v_hat), as PyTorch does, so a step is the reference's number
    for number.

    Args:
        learning_rate: a float or a `LearningRateSchedule`. Defaults to 1e-3.
        beta_1: Defaults to 0.9.
        beta_2: Defaults to 0.999 (ESRGAN's recipes use 0.99).
        epsilon: Defaults to 1e-8, PyTorch's default.

    Example:
    >>> optimizer = PyTorchAdam(1e-4, beta_1=0.9, beta_2=0.99)
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 name="pytorch_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        first_correction = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        second_correction = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(second_correction)),
                              self.epsilon)
        step_size = ops.divide(ops.cast(learning_rate, dtype), first_correction)
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denominator)))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
