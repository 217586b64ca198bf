"""The LiteRT (TFLite) runtime, for running and inspecting `.tflite` generators: the
interpreter (`ai_edge_litert`, XNNPACK; `tf.lite.Interpreter` is deprecated), a runner that
resizes a dynamic input, the operator list of a flatbuffer, and the converter (builtin ops
only). Library code: `keras-sr upscale` runs `.tflite` models through it (and presets, with
`--engine litert`: keras_sr.engines), and `export.tflite` (quantization, parity) builds on it."""

import contextlib
import tempfile

from keras_sr import _quiet

LITERT_MISSING = (
    "ai-edge-litert is needed to inspect or run .tflite models: pip install 'keras-sr[litert]'"
)


def operator_names(tflite_model):
    """Names of the operators a `.tflite` flatbuffer uses, e.g. `["CONV_2D", "DEPTH_TO_SPACE"]`.

    Custom ops (Flex ops included) are reported by their custom code, e.g. `"FlexConv2D"`.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as error:
        raise ImportError(LITERT_MISSING) from error
    names_by_code = {
        code: name
        for name, code in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }
    flatbuffer = schema.Model.GetRootAs(tflite_model, 0)
    names = []
    for index in range(flatbuffer.OperatorCodesLength()):
        operator = flatbuffer.OperatorCodes(index)
        # Codes above 127 live in BuiltinCode; older files keep them in DeprecatedBuiltinCode.
        code = max(operator.BuiltinCode(), operator.DeprecatedBuiltinCode())
        if code == schema.BuiltinOperator.CUSTOM:
            names.append(operator.CustomCode().decode())
        else:
            names.append(names_by_code[code])
    return sorted(set(names))


def interpreter(tflite_model, num_threads=None):
    """A LiteRT interpreter (`ai_edge_litert`, with XNNPACK) over `.tflite` bytes.

    A fixed-shape model is allocated at once. A dynamic one is allocated by `run` at the first
    real input size: its placeholder 1 x 1 size is too small for models that reflect-pad.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(LITERT_MISSING) from error
    tflite_interpreter = Interpreter(model_content=tflite_model, num_threads=num_threads)
    if all(side > 0 for side in tflite_interpreter.get_input_details()[0]["shape_signature"]):
        with _quiet.runtime_chatter_hidden():  # the first allocation names the delegate
            tflite_interpreter.allocate_tensors()
    return tflite_interpreter


def run(tflite_interpreter, lr_images):
    """Runs an interpreter on one `[batch, H, W, 3]` float32 array, resizing a dynamic input."""
    input_detail = tflite_interpreter.get_input_details()[0]
    resized = tuple(input_detail["shape"]) != tuple(lr_images.shape)
    if resized:
        tflite_interpreter.resize_tensor_input(input_detail["index"], list(lr_images.shape))
    # A no-op in LiteRT when nothing was resized since the last allocation; the first one
    # names the delegate on stderr.
    with _quiet.runtime_chatter_hidden() if resized else contextlib.nullcontext():
        tflite_interpreter.allocate_tensors()
    tflite_interpreter.set_tensor(input_detail["index"], lr_images)
    tflite_interpreter.invoke()
    output_detail = tflite_interpreter.get_output_details()[0]
    return tflite_interpreter.get_tensor(output_detail["index"])


@contextlib.contextmanager
def converter(model, input_size=None):
    """A `tf.lite.TFLiteConverter` over `model` (`[batch, H, W, 3]` float32 images in [0, 1]),
    limited to TFLite builtin ops: a Flex op makes the conversion fail here instead of on the
    phone. `input_size` `(height, width)` fixes the input at batch 1; None (the default) keeps
    batch, height and width dynamic (`run` resizes them). Valid inside the block only.
    """
    import tensorflow as tf

    height, width = (None, None) if input_size is None else (int(s) for s in input_size)
    batch = None if input_size is None else 1
    signature = tf.TensorSpec([batch, height, width, 3], tf.float32, name="lr_images")
    # Keras' own SavedModel export freezes the weights into the flatbuffer. Converting a
    # tf.function with `trackable_obj` instead keeps them as resource variables, and the LiteRT
    # interpreter then reads uninitialised memory (NaN outputs, seen on TF 2.21).
    from keras_sr.layers.residual_dense_block import per_layer_ops

    with tempfile.TemporaryDirectory(prefix="keras_sr_tflite_") as saved_model_dir:
        # Layer-named ops, which selective quantization (export.tflite's float_layers) needs.
        with per_layer_ops():
            model.export(saved_model_dir, format="tf_saved_model",
                         input_signature=[signature], verbose=False)
        tflite_converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        tflite_converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        yield tflite_converter


def conversion_failure(model_name, converter_message):
    """A one-line reason from the converter's multi-page MLIR dump."""
    import re

    flex_ops = re.search(r"TF Select ops: ([^\n]+)", converter_message)
    if flex_ops:
        return (
            f"{model_name} cannot be converted to TFLite with builtin ops only: it needs the "
            f"TensorFlow ops {flex_ops.group(1).strip()}, which would be Flex ops that the LiteRT "
            "interpreter does not carry (Keras' UpSampling2D is a known cause)"
        )
    first_line = converter_message.strip().splitlines()[0] if converter_message.strip() else ""
    return f"{model_name} cannot be converted to TFLite: {first_line}"
