"""BasicSR state dicts (the layout of BasicSR and Real-ESRGAN) <-> Keras networks, and the older
key layouts of the original ESRGAN and xinntao/ESRGAN mapped onto it."""

import re

import numpy as np

from keras_sr.architectures import RRDBNET_UNSHUFFLE_FACTORS as UNSHUFFLE_FACTORS
from keras_sr.convert.errors import ConversionError

_RRDB_HEAD = r"(conv_first|conv_body|conv_up[12]|conv_hr|conv_last)"
# Each layout: (pattern, replacement) pairs taking its keys to BasicSR's.
LAYOUTS = {
    "basicsr": [
        (rf"^{_RRDB_HEAD}\.(weight|bias)$", r"\1.\2"),
        (r"^body\.(\d+)\.rdb([123])\.conv([1-5])\.(weight|bias)$", r"body.\1.rdb\2.conv\3.\4"),
    ],
    "xinntao-esrgan": [
        (r"^(conv_first|conv_last)\.(weight|bias)$", r"\1.\2"),
        (r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)$",
         r"body.\1.rdb\2.conv\3.\4"),
        (r"^trunk_conv\.(weight|bias)$", r"conv_body.\1"),
        (r"^upconv([12])\.(weight|bias)$", r"conv_up\1.\2"),
        (r"^HRconv\.(weight|bias)$", r"conv_hr.\1"),
    ],
    # ESRGAN's first release (architecture.py, nn.Sequential indices): the trunk conv is the
    # entry of model.1.sub after the last RRDB.
    "esrgan-original": [
        (r"^model\.0\.(weight|bias)$", r"conv_first.\1"),
        (r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)$",
         r"body.\1.rdb\2.conv\3.\4"),
        (r"^model\.1\.sub\.\d+\.(weight|bias)$", r"conv_body.\1"),
        (r"^model\.3\.(weight|bias)$", r"conv_up1.\1"),
        (r"^model\.6\.(weight|bias)$", r"conv_up2.\1"),
        (r"^model\.8\.(weight|bias)$", r"conv_hr.\1"),
        (r"^model\.10\.(weight|bias)$", r"conv_last.\1"),
    ],
    "basicsr-srvgg": [(r"^body\.(\d+)\.(weight|bias)$", r"body.\1.\2")],
}
# Real-ESRGAN keeps the EMA weights (the published ones) beside the raw ones.
WRAPPERS = ("params_ema", "params", "state_dict", "model")
# RRDBNet's conv_first input channels -> scale: x2 and x1 take pixel-unshuffled inputs.
UNSHUFFLE_IN_CHANNELS = {3 * factor * factor: scale for scale, factor in UNSHUFFLE_FACTORS.items()}


def unwrap(checkpoint, source="checkpoint"):
    """The flat {name: array} state dict inside a loaded checkpoint."""
    while isinstance(checkpoint, dict):
        wrapper = next((key for key in WRAPPERS if isinstance(checkpoint.get(key), dict)), None)
        if wrapper is None:
            break
        checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ConversionError(f"{source} holds no state dict (a dict of tensors)")
    state_dict = {}
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise ConversionError(f"{source}: entry {key!r} is not a named tensor")
        # nn.DataParallel / DistributedDataParallel prefix every key with "module.".
        state_dict[key.removeprefix("module.")] = value
    return state_dict


def to_basicsr_layout(state_dict, source="checkpoint"):
    """`(layout_name, state_dict)` with BasicSR's keys; refuses keys no layout knows."""
    best = None
    for name, rules in LAYOUTS.items():
        mapped, unexpected = {}, []
        for key, value in state_dict.items():
            for pattern, replacement in rules:
                if re.match(pattern, key):
                    target = re.sub(pattern, replacement, key)
                    if target in mapped:
                        raise ConversionError(f"{source}: two entries map to {target} in the "
                                              f"{name} layout")
                    mapped[target] = value
                    break
            else:
                unexpected.append(key)
        if best is None or len(mapped) > len(best[1]):
            best = (name, mapped, unexpected)
    name, mapped, unexpected = best
    if unexpected:
        shown = ", ".join(unexpected[:12]) + (f", ... ({len(unexpected)} in all)"
                                              if len(unexpected) > 12 else "")
        raise ConversionError(
            f"{source} matches no known RRDBNet / SRVGGNetCompact layout (closest: {name}); "
            f"unexpected keys: {shown}")
    return name, mapped


def infer_architecture(state_dict, source="checkpoint"):
    """`(class_name, constructor kwargs)` read off the weight shapes of a BasicSR state dict."""
    if "conv_first.weight" in state_dict:
        weight = state_dict["conv_first.weight"]
        if weight.ndim != 4 or weight.shape[1] not in UNSHUFFLE_IN_CHANNELS:
            raise ConversionError(f"{source}: conv_first.weight of shape {weight.shape} is not "
                                  "an RRDBNet's (3, 12 or 48 input channels)")
        blocks = {int(key.split(".")[1]) for key in state_dict if key.startswith("body.")}
        if blocks != set(range(len(blocks))):
            raise ConversionError(f"{source}: RRDB blocks {sorted(blocks)} are not numbered "
                                  "0..N-1")
        growth = state_dict["body.0.rdb1.conv1.weight"].shape[0] if blocks else 32
        kwargs = {"scale": UNSHUFFLE_IN_CHANNELS[weight.shape[1]], "num_blocks": len(blocks),
                  "num_features": int(weight.shape[0]), "growth_channels": int(growth)}
        return "RRDBNet", kwargs
    convs = sorted(int(key.split(".")[1]) for key in state_dict
                   if key.startswith("body.") and key.endswith(".weight")
                   and state_dict[key].ndim == 4)
    if convs and convs == list(range(0, 2 * len(convs), 2)):
        last = state_dict[f"body.{convs[-1]}.weight"].shape[0]
        scale = int(round((last / 3) ** 0.5))
        if 3 * scale * scale != last:
            raise ConversionError(f"{source}: the last conv has {last} outputs, not 3 * scale^2")
        if "body.1.weight" not in state_dict:
            raise ConversionError(f"{source}: an SRVGGNetCompact without PReLU weights (ReLU or "
                                  "LeakyReLU) cannot be told apart from its weights; only the "
                                  "PReLU variant of the published models is imported")
        kwargs = {"scale": scale, "num_convs": len(convs) - 2,
                  "num_features": int(state_dict["body.0.weight"].shape[0])}
        return "SRVGGNetCompact", kwargs
    raise ConversionError(f"{source}: neither an RRDBNet (no conv_first) nor an "
                          "SRVGGNetCompact (body.0, body.2, ... convs)")


def _shuffle_permutation(channels, factor):
    """perm[k_tf] = k_torch between TF's depth-to-space channel order (i*r + j)*C + c and
    PyTorch's pixel_(un)shuffle order c*r*r + i*r + j."""
    i_j, c = np.divmod(np.arange(channels * factor * factor), channels)
    return c * factor * factor + i_j


def parameter_map(model):
    """`[(basicsr_prefix, keras_layer, kind)]` for every weight-holding layer of `model`;
    kind says how PyTorch's tensors are laid out for it."""
    from keras_sr.models import RRDBNet, SRVGGNetCompact, UNetDiscriminatorSN

    if isinstance(model, UNetDiscriminatorSN):
        # Real-ESRGAN's netD files: conv0 and conv9 plain, conv1-8 torch spectral_norm'd
        # (weight_orig, and the power iteration's weight_u / weight_v buffers).
        return ([("conv0", model.get_layer("conv0"), ("conv",))]
                + [(f"conv{index}", model.get_layer(f"conv{index}"), ("spectral",))
                   for index in range(1, 9)]
                + [("conv9", model.get_layer("logits"), ("conv",))])
    if isinstance(model, RRDBNet):
        unshuffle = UNSHUFFLE_FACTORS[model.scale]
        entries = [("conv_first", model.get_layer("conv_first"),
                    ("conv_in_shuffled", unshuffle) if unshuffle > 1 else ("conv",))]
        for index in range(model.num_blocks):
            block = model.get_layer(f"body_{index}")
            for rdb_index, rdb in enumerate(block.blocks, 1):
                for conv_index, conv in enumerate(rdb.convs, 1):
                    entries.append((f"body.{index}.rdb{rdb_index}.conv{conv_index}", conv,
                                    ("conv",)))
        entries += [(name, model.get_layer(name), ("conv",))
                    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")]
        return entries
    if isinstance(model, SRVGGNetCompact):
        if model.activation != "prelu":
            raise ConversionError("only the PReLU SRVGGNetCompact maps onto BasicSR weights "
                                  "that can be told apart on import")
        names = ["first"] + [str(index) for index in range(1, model.num_convs + 1)]
        entries = []
        for position, name in enumerate(names):
            entries.append((f"body.{2 * position}", model.get_layer(f"conv_{name}"), ("conv",)))
            entries.append((f"body.{2 * position + 1}", model.get_layer(f"act_{name}"),
                            ("prelu",)))
        entries.append((f"body.{2 * len(names)}", model.get_layer("conv_last"),
                        ("conv_out_shuffled", model.scale)))
        return entries
    raise ConversionError(f"{type(model).__name__} has no BasicSR weight layout; RRDBNet, "
                          "SRVGGNetCompact and UNetDiscriminatorSN do")


def _spectral_v_order(kernel_shape):
    """order[k_keras] = k_torch for spectral norm's `v`: PyTorch flattens a kernel's rows in
    (input channels, rows, columns) order, Keras in (rows, columns, input channels)."""
    rows, columns, channels = kernel_shape[:3]
    return np.arange(rows * columns * channels).reshape(channels, rows, columns) \
        .transpose(1, 2, 0).reshape(-1)


def _keys(prefix, kind, layer):
    """{suffix: BasicSR key} of a layer's tensors."""
    if kind[0] == "prelu":
        suffixes = ("weight",)
    elif kind[0] == "spectral":
        suffixes = ("weight_orig", "weight_u", "weight_v")
    else:
        suffixes = ("weight", "bias") if len(layer.weights) > 1 else ("weight",)
    return {suffix: f"{prefix}.{suffix}" for suffix in suffixes}


def _to_keras(kind, tensors):
    if kind[0] == "prelu":
        return [tensors["weight"].reshape(1, 1, -1)]
    if kind[0] == "spectral":
        kernel = tensors["weight_orig"].transpose(2, 3, 1, 0)
        return [kernel, tensors["weight_u"],
                tensors["weight_v"][_spectral_v_order(kernel.shape)]]
    kernel = tensors["weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if "bias" not in tensors:
        return [kernel]
    bias = tensors["bias"]
    if kind[0] == "conv_in_shuffled":
        kernel = kernel[:, :, _shuffle_permutation(3, kind[1]), :]
    elif kind[0] == "conv_out_shuffled":
        permutation = _shuffle_permutation(3, kind[1])
        kernel, bias = kernel[..., permutation], bias[permutation]
    return [kernel, bias]


def _to_torch(kind, weights):
    if kind[0] == "prelu":
        return {"weight": weights[0].reshape(-1)}
    if kind[0] == "spectral":
        kernel, u, v = weights
        return {"weight_orig": np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)),
                "weight_u": u, "weight_v": v[np.argsort(_spectral_v_order(kernel.shape))]}
    if len(weights) == 1:
        return {"weight": np.ascontiguousarray(weights[0].transpose(3, 2, 0, 1))}
    kernel, bias = weights
    if kind[0] == "conv_in_shuffled":
        kernel = kernel[:, :, np.argsort(_shuffle_permutation(3, kind[1])), :]
    elif kind[0] == "conv_out_shuffled":
        inverse = np.argsort(_shuffle_permutation(3, kind[1]))
        kernel, bias = kernel[..., inverse], bias[inverse]
    return {"weight": np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), "bias": bias}


def _variables(layer, kind):
    """The layer's variables in `_to_keras`'s order."""
    if kind[0] == "spectral":
        return [layer.layer.kernel, layer.u, layer.v]
    return list(layer.weights)


def build_model(state_dict, source="checkpoint", name=None):
    """The Keras network for a BasicSR state dict, with its weights; the class comes from
    Keras' registry, so that the converters import no network."""
    import keras

    class_name, kwargs = infer_architecture(state_dict, source)
    network = keras.saving.get_registered_object(f"keras_sr>{class_name}")
    if network is None:  # a process that put registration off (keras_sr.startup)
        from keras_sr import startup

        startup.register_everything()
        network = keras.saving.get_registered_object(f"keras_sr>{class_name}")
    model = network(name=name, **kwargs) if name else network(**kwargs)
    load_weights(model, state_dict, source)
    return model


def load_weights(model, state_dict, source="checkpoint"):
    """Sets `model`'s weights from a BasicSR state dict that must match it exactly."""
    entries = parameter_map(model)
    expected = set()
    for prefix, layer, kind in entries:
        keys = _keys(prefix, kind, layer)
        expected.update(keys.values())
        missing = [key for key in keys.values() if key not in state_dict]
        if missing:
            raise ConversionError(f"{source}: missing {', '.join(missing)} for "
                                  f"{type(model).__name__}")
        values = _to_keras(kind, {s: np.asarray(state_dict[k], np.float32)
                                  for s, k in keys.items()})
        variables = _variables(layer, kind)
        shapes = [tuple(variable.shape) for variable in variables]
        if [v.shape for v in values] != shapes:
            raise ConversionError(
                f"{source}: {prefix} has shapes {[v.shape for v in values]} where "
                f"{type(model).__name__} needs {shapes}")
        for variable, value in zip(variables, values):
            variable.assign(value)
    extra = sorted(set(state_dict) - expected)
    if extra:
        raise ConversionError(f"{source}: unexpected keys for {type(model).__name__}: "
                              f"{', '.join(extra[:12])}")


def state_dict_of(model):
    """`model`'s weights as a BasicSR state dict of float32 numpy arrays."""
    state_dict = {}
    for prefix, layer, kind in parameter_map(model):
        weights = [np.asarray(variable, np.float32) for variable in _variables(layer, kind)]
        for suffix, value in _to_torch(kind, weights).items():
            state_dict[f"{prefix}.{suffix}"] = value
    return state_dict
