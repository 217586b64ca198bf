"""Child process for the serving tests: `python -m tests.robustness.serving_probe SAVED_MODEL
[MEMORY_LIMIT_MB]` loads an exported model the way TF-Serving does, sends one valid request,
then every bomb of `corpus.BOMBS` (and an animated WebP), then the valid request again, and
prints one JSON object: per request the outcome, the seconds it took and how far the process's
peak resident memory rose above what it was before the request."""

import json
import resource
import sys
import time


def peak_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss():
    # Writing 5 to clear_refs resets VmHWM to the current resident size (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def main(path, memory_limit_mb=None):
    if memory_limit_mb:
        limit = int(memory_limit_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import tensorflow as tf

    from tests.robustness import corpus

    upscale = tf.saved_model.load(path).signatures["upscale_image"]
    valid = corpus.encoded(np.random.default_rng(0).integers(0, 256, (9, 7, 3)), "PNG")
    first = upscale(images=tf.constant([valid]))["png_bytes"][0].numpy()
    requests = {name: make() for name, make in corpus.BOMBS.items()}
    requests["animated_webp"] = corpus.animated_webp()
    results = {}
    for name, data in requests.items():
        reset_peak_rss()
        before = peak_rss_mb()
        start = time.perf_counter()
        try:
            upscale(images=tf.constant([data]))
            outcome, message = "accepted", ""
        except tf.errors.OpError as error:
            outcome = "InvalidArgument" if isinstance(error, tf.errors.InvalidArgumentError) \
                else type(error).__name__
            message = error.message.split("assertion failed:")[-1]
        results[name] = {"bytes": len(data), "outcome": outcome, "message": message.strip(),
                         "seconds": time.perf_counter() - start,
                         "rss_growth_mb": peak_rss_mb() - before}
    after = upscale(images=tf.constant([valid]))["png_bytes"][0].numpy()
    print(json.dumps({"results": results, "still_serving": after == first,
                      "valid_png_bytes": len(after)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
