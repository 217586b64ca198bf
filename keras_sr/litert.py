"""The LiteRT (TFLite) runtime, for running and inspecting `.tflite` generators: the
interpreter (`ai_edge_litert`, XNNPACK; `tf.lite.Interpreter` is deprecated), a runner that
resizes a dynamic input, and the operator list of a flatbuffer. Library code: `keras-sr
upscale` runs `.tflite` models through it, and `export.tflite` (conversion) builds on it."""

import contextlib

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
