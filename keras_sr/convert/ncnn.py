"""ncnn `.param` + `.bin` models (as Real-ESRGAN-ncnn-vulkan ships them) read into BasicSR state
dicts, so that they take the same path into Keras as the PyTorch checkpoints."""

import dataclasses
import os

import numpy as np

from keras_sr.convert.errors import ConversionError

MAGIC = 7767517
FP16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38
RAW_SCALED_TAG = 0x0002C056
ARRAY_KEY_BASE = -23300  # key -23300 - k holds the array parameter k
LEAKY_RELU = 2  # Convolution activation_type


@dataclasses.dataclass
class Layer:
    type: str
    name: str
    inputs: list
    outputs: list
    params: dict

    def param(self, key, default=None):
        return self.params.get(key, default)


def read_param(path):
    """The layers of a text `.param` file, in file order."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.split() for line in file if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ConversionError(f"cannot read the ncnn param file {path}: {error}") from None
    if not lines or lines[0] != [str(MAGIC)]:
        raise ConversionError(f"{path} is not a text ncnn .param file (first line is not "
                              f"{MAGIC}; binary .param.bin files are not supported)")
    layers = []
    try:
        for fields in lines[2:]:
            layer_type, name, num_inputs, num_outputs = fields[:4]
            num_inputs, num_outputs = int(num_inputs), int(num_outputs)
            names = fields[4:4 + num_inputs + num_outputs]
            params = {}
            for item in fields[4 + num_inputs + num_outputs:]:
                key, value = item.split("=", 1)
                key = int(key)
                if key <= ARRAY_KEY_BASE:
                    values = value.split(",")
                    params[ARRAY_KEY_BASE - key] = [_number(v) for v in values[1:]]
                else:
                    params[key] = _number(value)
            layers.append(Layer(layer_type, name, names[:num_inputs], names[num_inputs:], params))
    except ValueError as error:
        raise ConversionError(f"{path}: malformed layer line {' '.join(fields)!r}: {error}") \
            from None
    return layers


def _number(text):
    return float(text) if any(c in text for c in ".eE") else int(text)


class _WeightReader:
    def __init__(self, path):
        try:
            with open(path, "rb") as file:
                self.data = file.read()
        except OSError as error:
            raise ConversionError(f"cannot read the ncnn weight file {path}: {error}") from None
        self.path = path
        self.offset = 0

    def _take(self, size):
        if self.offset + size > len(self.data):
            raise ConversionError(f"{self.path} ends early: the .param file needs more weights "
                                  "(a .bin of another model?)")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def raw(self, count):
        return np.frombuffer(self._take(4 * count), "<f4").copy()

    def tagged(self, count, layer):
        tag = int.from_bytes(self._take(4), "little")
        if tag == FP16_TAG:
            values = np.frombuffer(self._take(2 * count), "<f2").astype(np.float32)
            self._take((-2 * count) % 4)  # fp16 data is padded to 4 bytes
            return values
        if tag in (0, RAW_SCALED_TAG):
            return self.raw(count)
        kind = "int8" if tag == INT8_TAG else "quantized (table)"
        raise ConversionError(f"{self.path}: layer {layer} stores {kind} weights; only fp32 and "
                              "fp16 ncnn weights can be imported")

    def check_consumed(self):
        if self.offset != len(self.data):
            raise ConversionError(f"{self.path} has {len(self.data) - self.offset} bytes left "
                                  "over after the last layer (a .bin of another model?)")


def _count(param_path, layer, key, default=None):
    """A layer parameter that counts something: a positive integer, or an error naming it."""
    value = layer.param(key, default)
    if not isinstance(value, int) or value < 1:
        raise ConversionError(f"{param_path}: layer {layer.name} has {key}={value!r}; a "
                              "positive integer belongs there")
    return value


WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"}


def read_model(param_path, bin_path=None):
    """Reads an ncnn RRDBNet or SRVGGNetCompact; returns `(layers, convs)` where `convs` holds,
    in graph order, `(layer, weight OIHW, bias, prelu_slopes_or_None)`."""
    bin_path = bin_path or os.path.splitext(param_path)[0] + ".bin"
    layers = read_param(param_path)
    reader = _WeightReader(bin_path)
    convs = []
    for layer in layers:
        if layer.type == "Convolution":
            if layer.param(8, 0):
                raise ConversionError(f"{param_path}: layer {layer.name} is int8-quantized")
            out_channels = _count(param_path, layer, 0)
            kernel_w = _count(param_path, layer, 1)
            kernel_h = layer.param(11, kernel_w)
            if layer.param(3, 1) != 1 or layer.param(11, kernel_w) != kernel_w \
                    or layer.param(2, 1) != 1:
                raise ConversionError(f"{param_path}: layer {layer.name} is not a stride-1 "
                                      "square convolution")
            size = _count(param_path, layer, 6)
            if size % (out_channels * kernel_h * kernel_w):
                raise ConversionError(f"{param_path}: layer {layer.name} has {size} weights, "
                                      f"not a multiple of {out_channels} x {kernel_h} x "
                                      f"{kernel_w}")
            weight = reader.tagged(size, layer.name)
            in_channels = size // (out_channels * kernel_h * kernel_w)
            weight = weight.reshape(out_channels, in_channels, kernel_h, kernel_w)
            bias = reader.raw(out_channels) if layer.param(5, 0) else \
                np.zeros(out_channels, np.float32)
            convs.append([layer, weight, bias, None])
        elif layer.type == "PReLU":
            slopes = reader.raw(_count(param_path, layer, 0, default=1))
            if not convs or convs[-1][0].outputs[0] != layer.inputs[0]:
                raise ConversionError(f"{param_path}: PReLU {layer.name} does not follow a "
                                      "convolution")
            convs[-1][3] = slopes
        elif layer.type not in WEIGHTLESS:
            raise ConversionError(f"{param_path}: layer type {layer.type} ({layer.name}) is "
                                  "not part of an RRDBNet or SRVGGNetCompact graph")
    reader.check_consumed()
    return layers, [tuple(conv) for conv in convs]


def read_state_dict(param_path, bin_path=None):
    """`(architecture, state_dict)`: an ncnn model as a BasicSR state dict (numpy arrays).

    Raises:
        ConversionError: naming the file and the layer, for anything malformed.
    """
    try:
        return _read_state_dict(param_path, bin_path)
    except (ConversionError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001
        # A parameter of the wrong kind somewhere the checks above do not look.
        raise ConversionError(f"{param_path} is not a readable ncnn model: "
                              f"{type(error).__name__}: {str(error)[:200]}") from None


def _read_state_dict(param_path, bin_path):
    layers, convs = read_model(param_path, bin_path)
    types = {layer.type for layer in layers}
    if "PixelShuffle" in types:
        return "srvgg_compact", _srvgg_state_dict(param_path, layers, convs)
    if "Concat" in types:
        return "rrdbnet", _rrdbnet_state_dict(param_path, layers, convs)
    raise ConversionError(f"{param_path} is neither an RRDBNet nor an SRVGGNetCompact graph")


def _interp(layers):
    return [layer for layer in layers if layer.type == "Interp"]


def _srvgg_state_dict(param_path, layers, convs):
    shuffle = next(layer for layer in layers if layer.type == "PixelShuffle")
    if shuffle.param(1, 0) != 0:
        raise ConversionError(f"{param_path}: PixelShuffle {shuffle.name} is in depth-to-space "
                              "mode; only PyTorch's pixel_shuffle order is supported")
    interps = _interp(layers)
    if len(interps) != 1:
        # Real-ESRGAN's animevideov3 x2 / x3 ncnn files are the x4 network followed by a
        # bicubic downscale, which is not part of SRVGGNetCompact.
        raise ConversionError(
            f"{param_path}: the network is followed by another resize "
            f"({', '.join(layer.name for layer in interps[1:])}); import the x4 file of the "
            "same model and resize its output instead")
    if any(conv[3] is None for conv in convs[:-1]) or convs[-1][3] is not None:
        raise ConversionError(f"{param_path}: every convolution but the last must be followed "
                              "by a PReLU, as in the published SRVGGNetCompact models")
    state_dict = {}
    for index, (_, weight, bias, slopes) in enumerate(convs):
        state_dict[f"body.{2 * index}.weight"] = weight
        state_dict[f"body.{2 * index}.bias"] = bias
        if slopes is not None:
            state_dict[f"body.{2 * index + 1}.weight"] = slopes
    return state_dict


def _rrdbnet_state_dict(param_path, layers, convs):
    count = len(convs) - 6
    if count < 0 or count % 15:
        raise ConversionError(f"{param_path}: {len(convs)} convolutions do not make an x4 "
                              "RRDBNet (15 per block + 6)")
    interps = _interp(layers)
    if len(interps) != 2 or any(layer.param(0) != 1 for layer in interps):
        raise ConversionError(f"{param_path}: an x4 RRDBNet upsamples twice with nearest "
                              "neighbour; this graph does not")
    names = ["conv_first"]
    activated = [False]
    for block in range(count // 15):
        for rdb in (1, 2, 3):
            names += [f"body.{block}.rdb{rdb}.conv{conv}" for conv in range(1, 6)]
            activated += [True] * 4 + [False]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    activated += [False, True, True, True, False]
    state_dict = {}
    for name, active, (layer, weight, bias, _) in zip(names, activated, convs):
        has_leaky = layer.param(9, 0) == LEAKY_RELU and layer.param(10, [0])[0] == 0.2
        if has_leaky != active:
            raise ConversionError(f"{param_path}: convolution {layer.name} ({name}) "
                                  f"{'lacks' if active else 'has'} the LeakyReLU of an RRDBNet")
        state_dict[f"{name}.weight"] = weight
        state_dict[f"{name}.bias"] = bias
    return state_dict


def reference_runner(param_path, bin_path, num_threads=2):
    """A function HxWx3 float32 [0, 1] -> SR image (clipped, as the Keras networks) that runs
    the model in ncnn itself on the CPU in fp32: the reference for parity tests and latency
    comparisons. Needs the PyPI package `ncnn`."""
    try:
        import ncnn as ncnn_runtime
    except ImportError:
        raise ConversionError("the ncnn reference needs the PyPI package ncnn: "
                              "pip install ncnn") from None
    net = ncnn_runtime.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = num_threads
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)
    if net.load_param(param_path) or net.load_model(bin_path):
        raise ConversionError(f"ncnn could not load {param_path} / {bin_path}")

    def run(image):
        chw = np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1))
        extractor = net.create_extractor()
        # ncnn.Mat wraps chw's buffer without a copy: chw stays referenced until extract.
        mat = ncnn_runtime.Mat(chw)
        extractor.input("data", mat)
        status, output = extractor.extract("output")
        if status:
            raise RuntimeError(f"ncnn failed on {param_path} with status {status}")
        result = np.array(output).transpose(1, 2, 0)
        del chw, mat
        return np.clip(result, 0.0, 1.0)

    run.net = net  # the Net must outlive every call
    return run
