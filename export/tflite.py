"""TFLite / LiteRT conversion of keras-sr generators.

Models convert with TFLite builtin ops only (no Flex ops: the LiteRT interpreter on phones does not
carry them) and keep a dynamic H x W unless a fixed input size is asked for, which is what mobile
GPU delegates want.
"""

import re
import tempfile

import tensorflow as tf

LITERT_MISSING = (
    "ai-edge-litert is needed to inspect or run .tflite models: pip install 'keras-sr[litert]'"
)


def convert(model, input_size=None):
    """Converts a Keras generator to a float32 TFLite flatbuffer.

    Args:
        model: a Keras model mapping `[batch, H, W, 3]` images in [0, 1] to SR images.
        input_size: `(height, width)` for a fixed-shape model, or None (the default) for a model
            whose batch, height and width are resized at run time with `resize_tensor_input`.

    Returns:
        The `.tflite` model as bytes.

    Raises:
        ValueError: if `input_size` is not two positive integers, or the model needs an op
            outside the TFLite builtin set.
    """
    if input_size is not None:
        if len(input_size) != 2 or any(int(side) != side or side < 1 for side in input_size):
            raise ValueError(
                f"input_size must be (height, width) as two positive integers, got {input_size!r}"
            )
    height, width = (None, None) if input_size is None else (int(s) for s in input_size)
    batch = None if input_size is None else 1
    signature = tf.TensorSpec([batch, height, width, 3], tf.float32, name="lr_images")
    # Keras' own SavedModel export freezes the weights into the flatbuffer. Converting a
    # tf.function with `trackable_obj` instead keeps them as resource variables, and the LiteRT
    # interpreter then reads uninitialised memory (NaN outputs, seen on TF 2.21).
    with tempfile.TemporaryDirectory(prefix="keras_sr_tflite_") as saved_model_dir:
        model.export(saved_model_dir, format="tf_saved_model", input_signature=[signature],
                     verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        # Builtins only: a Flex op makes the conversion fail here instead of on the phone.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as error:  # the converter raises its own ConverterError type
            raise ValueError(conversion_failure(model.name, str(error))) from error


def conversion_failure(model_name, converter_message):
    """A one-line reason from the converter's multi-page MLIR dump."""
    flex_ops = re.search(r"TF Select ops: ([^\n]+)", converter_message)
    if flex_ops:
        return (
            f"{model_name} cannot be converted to TFLite with builtin ops only: it needs the "
            f"TensorFlow ops {flex_ops.group(1).strip()}, which would be Flex ops that the LiteRT "
            "interpreter does not carry (Keras' UpSampling2D is a known cause)"
        )
    first_line = converter_message.strip().splitlines()[0] if converter_message.strip() else ""
    return f"{model_name} cannot be converted to TFLite: {first_line}"


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
        tflite_interpreter.allocate_tensors()
    return tflite_interpreter


def run(tflite_interpreter, lr_images):
    """Runs an interpreter on one `[batch, H, W, 3]` float32 array, resizing a dynamic input."""
    input_detail = tflite_interpreter.get_input_details()[0]
    if tuple(input_detail["shape"]) != tuple(lr_images.shape):
        tflite_interpreter.resize_tensor_input(input_detail["index"], list(lr_images.shape))
    # A no-op in LiteRT when nothing was resized since the last allocation.
    tflite_interpreter.allocate_tensors()
    tflite_interpreter.set_tensor(input_detail["index"], lr_images)
    tflite_interpreter.invoke()
    output_detail = tflite_interpreter.get_output_details()[0]
    return tflite_interpreter.get_tensor(output_detail["index"])
