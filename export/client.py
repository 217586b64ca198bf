"""A client for keras-sr models served by TF-Serving, over REST (port 8501) or gRPC (8500).

    python -m export.client IMAGE... -o OUT_DIR [--url http://localhost:8501] --model-name NAME
        [--version N] [--grpc localhost:8500]

Sends each image file as it is (base64 in REST) to the `upscale_image` signature and writes the
PNG that comes back. `RestClient.upscale_array` calls `serving_default` with float arrays.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup

import numpy as np


class ServingError(RuntimeError):
    """The server answered with an error (its message included) or could not be reached."""


class RestClient:
    """TF-Serving's REST predict API: POST /v1/models/NAME[/versions/N]:predict."""

    def __init__(self, url="http://localhost:8501", model_name="sr", version=None, timeout=600):
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.version = version
        self.timeout = timeout

    @property
    def predict_url(self):
        version = f"/versions/{self.version}" if self.version is not None else ""
        return f"{self.url}/v1/models/{self.model_name}{version}:predict"

    def predict(self, body):
        request = urllib.request.Request(self.predict_url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise ServingError(f"{self.predict_url}: HTTP {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise ServingError(f"{self.predict_url}: {error.reason}") from None

    def upscale_images(self, encoded_images):
        """Encoded image bytes -> PNG bytes, through the `upscale_image` signature."""
        body = {"signature_name": "upscale_image",
                "instances": [{"b64": base64.b64encode(data).decode()}
                              for data in encoded_images]}
        predictions = self.predict(body)["predictions"]
        return [base64.b64decode(item["b64"]) for item in predictions]

    def upscale_array(self, lr_images):
        """float32 [N, H, W, 3] in [0, 1] -> [N, sH, sW, 3], through `serving_default`."""
        body = {"signature_name": "serving_default",
                "inputs": {"lr_images": np.asarray(lr_images, np.float32).tolist()}}
        return np.asarray(self.predict(body)["outputs"], np.float32)


def predict_request(encoded_images, model_name, version=None):
    """A tensorflow.serving.PredictRequest for `upscale_image` (needs tensorflow-serving-api)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "upscale_image"
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(list(encoded_images),
                                                           dtype=tf.string))
    return request


def png_outputs(response):
    """The PNG bytes of a PredictResponse from `upscale_image`."""
    return list(response.outputs["png_bytes"].string_val)


class GrpcClient:
    """TF-Serving's gRPC PredictionService (tensorflow-serving-api: keras-sr[serving])."""

    def __init__(self, target="localhost:8500", model_name="sr", version=None, timeout=600):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        # Upscaled images are large: lift gRPC's 4 MB default message limit.
        options = [("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", -1)]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model_name, self.version, self.timeout = model_name, version, timeout

    def upscale_images(self, encoded_images):
        import grpc

        request = predict_request(encoded_images, self.model_name, self.version)
        try:
            return png_outputs(self.stub.Predict(request, timeout=self.timeout))
        except grpc.RpcError as error:
            raise ServingError(f"gRPC {error.code().name}: {error.details()}") from None


def main(argv=None, prog="python -m export.client"):
    from keras_sr import atomic, outputs

    parser = argparse.ArgumentParser(prog=prog, description=outputs.first_paragraph(__doc__))
    parser.add_argument("images", nargs="+", help="image files to upscale")
    parser.add_argument("-o", "--output", required=True, help="folder for the PNG results")
    parser.add_argument("--model-name", required=True, help="TF-Serving --model_name")
    parser.add_argument("--version", type=outputs.int_at_least(1),
                        help="model version (default: newest)")
    parser.add_argument("--url", default="http://localhost:8501", help="REST endpoint")
    parser.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC instead of REST")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    args = parser.parse_args(argv)
    jobs = [(path, os.path.join(args.output, os.path.splitext(os.path.basename(path))[0]
                                + ".png")) for path in args.images]
    try:
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            raise outputs.OutputError(f"-o {args.output} is a file, not a folder")
        outputs.refuse_collisions(jobs, "upscale them into different folders")
        outputs.writable_directory(args.output)
    except (OSError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    client = GrpcClient(args.grpc, args.model_name, args.version) if args.grpc else \
        RestClient(args.url, args.model_name, args.version)
    failures = 0
    for path, target in jobs:
        if os.path.exists(target) and not args.overwrite:
            print(f"{target} exists, kept (--overwrite replaces it)", file=sys.stderr)
            failures += 1
            continue
        try:
            with open(path, "rb") as file:
                (png,) = client.upscale_images([file.read()])
        except (OSError, ServingError) as error:
            print(f"{path}: {error}", file=sys.stderr)
            failures += 1
            continue
        atomic.write_bytes(target, png)
        print(f"{path} -> {target}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
