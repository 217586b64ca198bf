import keras
from keras import ops


def _normalized(vector, epsilon):
    # PyTorch's F.normalize: x / max(||x||, eps).
    return vector / ops.maximum(ops.sqrt(ops.sum(ops.square(vector))), epsilon)


@keras.saving.register_keras_serializable(package="keras_sr")
class SpectralNorm(keras.layers.Wrapper):
    """Spectral normalisation parameterised as PyTorch's `torch.nn.utils.spectral_norm`.

    Miyato et al., "Spectral Normalization for GANs" (ICLR 2018, arXiv 1802.05957): the wrapped
    layer computes with `kernel / sigma`, sigma the largest singular value of the kernel seen as
    an [output channels, everything else] matrix, estimated by power iteration with persistent
    vectors `u` and `v`. As PyTorch's `spectral_norm` (which trained Real-ESRGAN's U-Net
    discriminator) does it:
    - the wrapped layer's `kernel` stays the trained, unnormalised weight (PyTorch's
      `weight_orig`); the normalised kernel exists only inside the call, so the optimizer
      updates the raw weight and gradients flow through sigma;
    - `u` and `v` are non-trainable state: each training call runs `power_iterations` rounds
      (v = normalize(W^T u), u = normalize(W v)) without gradient, stores them, and takes
      sigma = u . W v from the new vectors; an inference call reuses the stored vectors;
    - normalize divides by max(norm, `epsilon`), as `F.normalize` does.

    Keras' `SpectralNormalization` instead writes the normalised kernel back into the variable,
    so the optimizer moves the normalised weights and no gradient passes through sigma: early
    updates differ from PyTorch's by about 1.3-1.4x in size.

    The power iteration runs in the variables' dtype (float32 under mixed policies; the wrapper's
    own policy is that dtype); the wrapped layer computes in its policy's dtype, autocasting the
    normalised kernel as it would its own. Under a distribution strategy
    every replica computes the same vectors (they depend on the weights only) and `u` / `v`
    are mean-aggregated, as DistributedDataParallel broadcasts PyTorch's buffers from one rank.
    `v` is kept in Keras' kernel order (kernel rows, columns, input channels), PyTorch's in
    (input channels, rows, columns): `keras_sr.convert` reorders it.

    Args:
        layer: a layer with a `kernel` whose last axis is the output (Conv2D, Dense, ...).
        power_iterations: int, rounds per training call. Defaults to 1 (PyTorch's and
            Real-ESRGAN's).
        epsilon: float, the normalisation's floor. Defaults to 1e-12 (PyTorch's).

    Example:
    >>> conv = SpectralNorm(keras.layers.Conv2D(8, 3, padding="same", use_bias=False))
    >>> conv(np.zeros((1, 16, 16, 3), "float32"), training=True).shape
    TensorShape([1, 16, 16, 8])
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        # The power iteration reads the variables as they are (float32 under mixed policies):
        # the wrapper neither autocasts nor, with its compute dtype the variables' one, opens
        # an autocast scope (Keras opens one for a mixed layer even with autocast=False). The
        # wrapped layer keeps its own policy and autocasts the normalised kernel it is given.
        kwargs["autocast"] = False
        super().__init__(layer, **kwargs)
        if self.dtype_policy.compute_dtype != self.dtype_policy.variable_dtype:
            self.dtype_policy = keras.dtype_policies.get(self.dtype_policy.variable_dtype)
        if isinstance(power_iterations, bool) or not isinstance(power_iterations, int) \
                or power_iterations < 1:
            raise ValueError(f"SpectralNorm needs power_iterations to be a positive int, got "
                             f"{power_iterations!r}")
        if not epsilon > 0:
            raise ValueError(f"SpectralNorm needs epsilon > 0, got {epsilon!r}")
        self.power_iterations = power_iterations
        self.epsilon = epsilon

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = getattr(self.layer, "kernel", None)
        if not isinstance(kernel, keras.Variable):
            raise ValueError(f"SpectralNorm wraps layers with a `kernel` variable; "
                             f"{type(self.layer).__name__} {self.layer.name!r} has none")
        self.kernel_shape = tuple(kernel.shape)
        rows = 1
        for size in self.kernel_shape[:-1]:
            rows *= size
        epsilon = self.epsilon

        def unit_normal(shape, dtype=None):
            # PyTorch draws u and v from N(0, 1) and normalises them.
            return _normalized(keras.random.normal(shape, dtype=dtype), epsilon)

        self.u = self.add_weight(shape=(self.kernel_shape[-1],), initializer=unit_normal,
                                 trainable=False, aggregation="mean", name="u")
        self.v = self.add_weight(shape=(rows,), initializer=unit_normal, trainable=False,
                                 aggregation="mean", name="v")
        self.built = True

    def normalized_kernel(self, training=False):
        """kernel / sigma; with `training`, after `power_iterations` rounds that update u, v."""
        kernel = ops.convert_to_tensor(self.layer.kernel)
        matrix = ops.reshape(kernel, (-1, self.kernel_shape[-1]))  # PyTorch's W transposed
        u, v = ops.convert_to_tensor(self.u), ops.convert_to_tensor(self.v)
        if training:
            frozen = ops.stop_gradient(matrix)
            for _ in range(self.power_iterations):
                v = _normalized(ops.matmul(frozen, u), self.epsilon)
                u = _normalized(ops.matmul(v, frozen), self.epsilon)
            u, v = ops.stop_gradient(u), ops.stop_gradient(v)
            self.u.assign(u)
            self.v.assign(v)
        sigma = ops.sum(u * ops.matmul(v, matrix))
        return kernel / sigma

    def call(self, inputs, training=False):
        kernel = self.normalized_kernel(bool(training))
        # The wrapped layer reads its kernel variable; inside the scope that read returns the
        # normalised tensor, which keeps the gradient path to the raw kernel.
        with keras.StatelessScope(state_mapping=[(self.layer.kernel, kernel)]):
            return self.layer(inputs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "epsilon": self.epsilon})
        return config
