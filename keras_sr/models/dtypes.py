import keras


def output_dtype(dtype):
    """The dtype a network's last layer should run in under the `dtype` policy.

    Under `mixed_float16` / `mixed_bfloat16` the body computes in half precision but the images
    (or logits) that leave the network are float32, as the Keras mixed-precision guide
    recommends for numerically stable losses; other policies keep their own dtype.
    """
    policy = keras.config.dtype_policy() if dtype is None else keras.dtype_policies.get(dtype)
    return policy.variable_dtype


def keep_dtype_policy(model, dtype):
    """Records `dtype` as the model's own policy, so `get_config()` saves it.

    Keras' Functional constructor drops a `dtype` argument without a word; the layers already got
    it, but the model itself would report (and reload with) the global policy.
    """
    if dtype is not None:
        model.dtype_policy = keras.dtype_policies.get(dtype)
