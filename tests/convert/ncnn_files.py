"""Writes ncnn `.param` + `.bin` files of RRDBNet and SRVGGNetCompact from BasicSR state dicts,
in the graph shape of Real-ESRGAN's published ncnn models (Split layers wherever a blob feeds
several layers), so that both our reader and ncnn itself can run them."""

import collections

import numpy as np

FP16_TAG = 0x01306B47
LEAKY = "9=2 -23310=1,2.000000e-01"


class Graph:
    def __init__(self):
        self.layers = []  # [type, name, inputs, outputs, params]
        self.weights = []  # bytes, in layer order

    def add(self, layer_type, inputs, output, params="", weights=b""):
        name = f"{layer_type}_{len(self.layers)}"
        self.layers.append([layer_type, name, list(inputs), [output], params])
        self.weights.append(weights)
        return output

    def conv(self, name, inputs, state_dict, leaky=False, fp16=False):
        weight, bias = state_dict[f"{name}.weight"], state_dict[f"{name}.bias"]
        if fp16:
            data = np.asarray(weight, "<f2").tobytes()
            data = FP16_TAG.to_bytes(4, "little") + data + b"\0" * (-len(data) % 4)
        else:
            data = b"\0\0\0\0" + np.asarray(weight, "<f4").tobytes()
        params = f"0={weight.shape[0]} 1=3 4=1 5=1 6={weight.size}" + (f" {LEAKY}" if leaky
                                                                        else "")
        return self.add("Convolution", [inputs], f"{name}_out", params,
                        data + np.asarray(bias, "<f4").tobytes())

    def write(self, stem):
        consumers = collections.Counter(blob for layer in self.layers for blob in layer[2])
        lines, blobs, used = [], set(), collections.Counter()
        for layer_type, name, inputs, outputs, params in self.layers:
            renamed = []
            for blob in inputs:
                if consumers[blob] > 1:
                    renamed.append(f"{blob}_split{used[blob]}")
                    used[blob] += 1
                else:
                    renamed.append(blob)
            lines.append(" ".join([layer_type, name, str(len(inputs)), str(len(outputs)),
                                   *renamed, *outputs] + ([params] if params else [])))
            blobs.update(renamed + outputs)
            for blob in outputs:
                if consumers[blob] > 1:
                    outs = [f"{blob}_split{i}" for i in range(consumers[blob])]
                    lines.append(" ".join(["Split", f"split_{blob}", "1", str(len(outs)), blob,
                                           *outs]))
        with open(f"{stem}.param", "w") as file:
            file.write(f"7767517\n{len(lines)} {len(blobs)}\n" + "\n".join(lines) + "\n")
        with open(f"{stem}.bin", "wb") as file:
            file.write(b"".join(self.weights))
        return f"{stem}.param", f"{stem}.bin"


def write_rrdbnet(stem, state_dict, num_blocks, fp16=False):
    graph = Graph()
    data = graph.add("Input", [], "data", "0=0")
    first = graph.conv("conv_first", data, state_dict, fp16=fp16)
    body = first
    for block in range(num_blocks):
        block_in = features = body
        for rdb in (1, 2, 3):
            rdb_in, outs = features, [features]
            for conv in range(1, 6):
                name = f"body.{block}.rdb{rdb}.conv{conv}"
                joined = outs[0] if len(outs) == 1 else graph.add(
                    "Concat", outs, f"{name}_cat", "0=0")
                outs.append(graph.conv(name, joined, state_dict, leaky=conv < 5, fp16=fp16))
            features = graph.add("Eltwise", [outs[-1], rdb_in], f"b{block}r{rdb}_sum",
                                 "0=1 -23301=2,2.000000e-01,1.000000e+00")
        body = graph.add("Eltwise", [features, block_in], f"b{block}_sum",
                         "0=1 -23301=2,2.000000e-01,1.000000e+00")
    trunk = graph.conv("conv_body", body, state_dict, fp16=fp16)
    features = graph.add("BinaryOp", [first, trunk], "long_skip", "0=0")
    for index in (1, 2):
        features = graph.add("Interp", [features], f"up{index}",
                             "0=1 1=2.000000e+00 2=2.000000e+00")
        features = graph.conv(f"conv_up{index}", features, state_dict, leaky=True, fp16=fp16)
    features = graph.conv("conv_hr", features, state_dict, leaky=True, fp16=fp16)
    graph.conv("conv_last", features, state_dict, fp16=fp16)
    graph.layers[-1][3] = ["output"]
    return graph.write(stem)


def write_srvgg(stem, state_dict, num_convs, scale, fp16=False, trailing_resize=False):
    graph = Graph()
    data = graph.add("Input", [], "data", "0=0")
    features = data
    for position in range(num_convs + 1):
        features = graph.conv(f"body.{2 * position}", features, state_dict, fp16=fp16)
        slopes = state_dict[f"body.{2 * position + 1}.weight"]
        features = graph.add("PReLU", [features], f"prelu{position}", f"0={slopes.size}",
                             np.asarray(slopes, "<f4").tobytes())
    features = graph.conv(f"body.{2 * num_convs + 2}", features, state_dict, fp16=fp16)
    shuffled = graph.add("PixelShuffle", [features], "shuffled", f"0={scale}")
    base = graph.add("Interp", [data], "base", f"0=1 1={scale:.6e} 2={scale:.6e}")
    out = graph.add("BinaryOp", [shuffled, base], "sum", "0=0")
    if trailing_resize:
        graph.add("Interp", [out], "output", "0=3 1=5.000000e-01 2=5.000000e-01")
    else:
        graph.layers[-1][3] = ["output"]
    return graph.write(stem)
