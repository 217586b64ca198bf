"""A test double of TF-Serving's REST predict API, for testing export.client without a server.

It implements the documented contract (tensorflow.org/tfx/serving/api_rest) for what keras-sr
uses: POST /v1/models/NAME[/versions/N]:predict with `signature_name` and either `instances`
(row format) or `inputs` (columnar); `{"b64": ...}` decoded to bytes; outputs whose name ends
in `_bytes` returned as `{"b64": ...}`; errors as HTTP 400 `{"error": ...}`, an unknown model or
version as 404. It runs the exported SavedModel itself. It is not TF-Serving.
"""

import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf

ROUTE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _encode(name, array):
    if name.endswith("_bytes"):
        return [{"b64": base64.b64encode(item).decode()} for item in array.tolist()]
    return array.tolist()


class ServingDouble:
    def __init__(self, model_name, base_path):
        self.model_name = model_name
        self.base_path = base_path
        self.loaded = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def model(self, version):
        versions = sorted(int(v) for v in os.listdir(self.base_path) if v.isdigit())
        version = versions[-1] if version is None else int(version)
        if version not in versions:
            return None
        if version not in self.loaded:
            self.loaded[version] = tf.saved_model.load(
                os.path.join(self.base_path, str(version)), tags=["serve"])
        return self.loaded[version]

    def predict(self, model, body):
        signature = model.signatures[body.get("signature_name", "serving_default")]
        specs = signature.structured_input_signature[1]
        if "instances" in body:
            instances = _decode(body["instances"])
            if len(specs) == 1:
                (name,) = specs
                columns = {name: instances}
            else:
                columns = {name: [row[name] for row in instances] for name in specs}
        else:
            inputs = _decode(body["inputs"])
            columns = inputs if isinstance(inputs, dict) else {next(iter(specs)): inputs}
        tensors = {name: tf.constant(np.asarray(value) if specs[name].dtype != tf.string
                                     else value, dtype=specs[name].dtype)
                   for name, value in columns.items()}
        outputs = {name: value.numpy() for name, value in signature(**tensors).items()}
        if "instances" in body:
            if len(outputs) == 1:
                ((name, value),) = outputs.items()
                return {"predictions": _encode(name, value)}
            rows = len(next(iter(outputs.values())))
            return {"predictions": [{name: _encode(name, value[i:i + 1])[0]
                                     for name, value in outputs.items()} for i in range(rows)]}
        if len(outputs) == 1:
            ((name, value),) = outputs.items()
            return {"outputs": _encode(name, value)}
        return {"outputs": {name: _encode(name, value) for name, value in outputs.items()}}

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                match = ROUTE.match(self.path)
                if not match or match.group(1) != double.model_name:
                    return self.reply(404, {"error": f"Servable not found: {self.path}"})
                model = double.model(match.group(2))
                if model is None:
                    return self.reply(404, {"error": f"Servable not found for version "
                                                     f"{match.group(2)}"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    return self.reply(200, double.predict(model, body))
                except tf.errors.OpError as error:
                    return self.reply(400, {"error": error.message})
                except (KeyError, ValueError, TypeError) as error:
                    return self.reply(400, {"error": str(error)})

        return Handler
