"""Network interpolation (ESRGAN §3.4; Real-ESRGAN's denoise strength): a model whose every
weight is the weighted mean of two models' of one architecture."""


def architecture(model):
    """(class name, configuration without the name, weight shapes): what must agree."""
    config = dict(model.get_config())
    config.pop("name", None)
    return type(model).__name__, config, [tuple(w.shape) for w in model.weights]


def interpolate(first, second, alpha):
    """A new model of `second`'s architecture with the weights (1 - alpha) * first + alpha *
    second.

    Raises:
        ValueError: if alpha is outside [0, 1] or the models' architectures differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {alpha}")
    first_arch, second_arch = architecture(first), architecture(second)
    if first_arch != second_arch:
        differences = [key for key in set(first_arch[1]) | set(second_arch[1])
                       if first_arch[1].get(key) != second_arch[1].get(key)]
        detail = (f"{first_arch[0]} vs {second_arch[0]}" if first_arch[0] != second_arch[0]
                  else f"configurations differ in {sorted(differences)}" if differences
                  else "weight shapes differ")
        raise ValueError(f"cannot interpolate models of different architectures: {detail}")
    merged = type(second).from_config(second.get_config())
    merged.set_weights([(1.0 - alpha) * a + alpha * b
                        for a, b in zip(first.get_weights(), second.get_weights())])
    return merged
