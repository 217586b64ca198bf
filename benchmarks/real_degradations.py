"""Real-ESRGAN degradations: how many (LR, HR) pairs per second the host makes, how mixed a
batch is, and a sheet of what they look like with what was drawn for each.

    python -m benchmarks.real_degradations [--hr-patch 256] [--batch 12] [--batches 20]
        [--mix-batches 100] [--sheet degradations.png] [--pieces 30]

Throughput: `keras_sr.data.pipeline.training_dataset` with `degradation=DegradationOptions()`
(x4plus values) on the bundled sample photos, cached decoded images, `--batch` pairs of
`--hr-patch` HR each, parallel map with AUTOTUNE; the median over `--batches` batches after a
warm-up of 3, and the process's CPU seconds per pair over them (steadier between runs on a
shared virtual machine), next to the same pipeline with bicubic LR.

Batch mix: the draws of `--mix-batches` batches as the pipeline seeds them (one seed per stream
position, `pipeline.element_seed`): for the choices BasicSR's RealESRGANModel makes once per
batch (first and second resize direction and interpolation, Gaussian or Poisson noise in each
stage, the final order), the share of batches in which every pair made the same choice and the
mean number of distinct choices per batch. The reference shares them across the batch by
construction (hence its training-pair pool); these are what keras-sr's per-pair draws give.

`--pieces N`: instead, each piece of a pair alone on one core (one intra-op and one inter-op
thread, as the pipeline's private thread pool runs a pair), the median of N calls of each,
alternating between the pieces so that a slow spell of the host touches them all alike: the
unsharp mask and a 21 x 21 blur of the 400 x 400 crop, the resizes, Gaussian and Poisson
noise (colour and gray) and JPEG at 336 x 336 (the mean area the first stage's resize leaves),
and `pipeline.degraded_pair` on a bundled photo over N element seeds. Steadier than pairs per
second for comparing code: rerun it on each commit.

The sheet: one HR patch and eleven LR images degraded from it with different seeds (each
enlarged x4, nearest), each under the seed and what was drawn (`describe_draws`).
"""

import argparse
import os
import platform
import statistics
import time
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_sr.data.pipeline import training_dataset  # noqa: E402
from keras_sr.data.real_degradations import DegradationOptions, degrade  # noqa: E402
from keras_sr.data.sources import folder_source  # noqa: E402
from keras_sr.precision import describe_device  # noqa: E402

SAMPLES = str(resources.files("keras_sr.data") / "samples")


def pairs_per_second(degradation, hr_patch, batch, batches):
    """(pairs per second, the median over `batches` batches; CPU seconds per pair, the
    process's CPU time over them all). The second does not count time the virtual machine's
    cores were taken away (steal), which moves the first by +-20% between runs on shared
    hosts: compare code by the CPU time."""
    # Real-ESRGAN pads small photos to its crop; the bicubic path needs the patch.
    source = folder_source(SAMPLES, scale=4, min_hr_size=0 if degradation else hr_patch)
    iterator = iter(training_dataset(source, hr_patch, 4, batch, seed=0, cache=True,
                                     degradation=degradation))
    for _ in range(3):
        next(iterator)
    times = []
    cpu_start = time.process_time()
    for _ in range(batches):
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    cpu_per_pair = (time.process_time() - cpu_start) / (batch * batches)
    return batch / statistics.median(times), cpu_per_pair


def batch_mix(batches, batch, hr_patch, seed=0):
    """For each per-batch choice of the reference, the share of batches where all pairs agree
    and the mean count of distinct values per batch."""
    from keras_sr.data.pipeline import element_seed

    draw = tf.function(lambda index: degrade(tf.zeros([hr_patch, hr_patch, 3]), 4,
                                             tf.bitcast(element_seed(seed, index), tf.int32),
                                             return_draws=True)[1])
    lr_side = hr_patch // 4

    def choices(draws):
        first = draws["first_resize_size"][0] / hr_patch
        second = draws["second_resize_size"][0] / lr_side
        return {"first resize direction": int(np.sign(np.round(first - 1, 6))),
                "first resize method": int(draws["first_resize_method"]),
                "first noise type": bool(draws["first_gaussian"]),
                "second resize direction": int(np.sign(np.round(second - 1, 6))),
                "second resize method": int(draws["second_resize_method"]),
                "second noise type": bool(draws["second_gaussian"]),
                "final order": bool(draws["final_resize_first"])}

    rows = {}
    for number in range(batches):
        picks = [choices({key: value.numpy() for key, value in
                          draw(tf.constant(number * batch + index, tf.int64)).items()})
                 for index in range(batch)]
        for name in picks[0]:
            distinct = len({pick[name] for pick in picks})
            rows.setdefault(name, []).append(distinct)
    return {name: {"all_same": float(np.mean(np.array(values) == 1)),
                   "mean_distinct": float(np.mean(values))} for name, values in rows.items()}


def piece_times(repeats):
    """`{piece: median seconds}` of each piece alone (see the module docstring); call before
    any other TensorFlow op runs in the process (it sets the thread counts)."""
    from keras_sr.data import real_degradations as rd
    from keras_sr.data.pipeline import degraded_pair, element_seed

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    crop = tf.constant(rng.random((400, 400, 3), dtype=np.float32))
    stage = crop[:336, :336]
    seed = tf.constant([1, 2])
    kernel = rd.gaussian_kernel(21, 2.0, 1.5, 0.3)
    photo = tf.constant(sample_photos()[0])
    pieces = {
        "unsharp mask 400": (lambda x: rd.unsharp_mask(x[None])[0], crop),
        "blur 21x21 400": (lambda x: rd.filter_image(x, kernel), crop),
        "bicubic 400 -> 300": (lambda x: rd.interpolate(x, [300, 300], "bicubic", 0.75), crop),
        "area 400 -> 300": (lambda x: rd.interpolate(x, [300, 300], "area", 0.75), crop),
        "gaussian noise 336": (lambda x: rd.gaussian_noise(x, 10.0, seed), stage),
        "gaussian noise gray 336": (lambda x: rd.gaussian_noise(x, 10.0, seed, True), stage),
        "poisson noise 336": (lambda x: rd.poisson_noise(x, 2.0, seed), stage),
        "poisson noise gray 336": (lambda x: rd.poisson_noise(x, 2.0, seed, True), stage),
        "jpeg 336": (lambda x: rd.jpeg(x, 50.0), stage),
    }
    functions = {name: (tf.function(make), argument)
                 for name, (make, argument) in pieces.items()}
    pair = tf.function(lambda image, index: degraded_pair(
        image, 256, 4, element_seed(0, index), DegradationOptions(), rotate=False))
    times = {name: [] for name in [*functions, "degraded_pair (a photo, 400 crop)"]}
    for repeat in range(repeats + 2):  # two warm-up rounds (traces)
        for name, (function, argument) in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda value: value.numpy(), function(argument))
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        pair(photo, tf.constant(repeat, tf.int64))[0].numpy()
        if repeat >= 2:
            times["degraded_pair (a photo, 400 crop)"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def sample_photos():
    from keras_sr.data.images import read_image

    return [read_image(os.path.join(SAMPLES, name)) for name in sorted(os.listdir(SAMPLES))
            if name.endswith((".png", ".jpg"))]


def keras_sr_pairs(count, seed=0, options=DegradationOptions(), hr_patch=256):
    """`count` (LR, HR) float pairs from the bundled photos in turn, through
    `pipeline.degraded_pair` (flips on, no rotations: the x4plus recipe's)."""
    from keras_sr.data.pipeline import degraded_pair, element_seed

    make = tf.function(lambda image, index: degraded_pair(
        image, hr_patch, 4, element_seed(seed, index), options, rotate=False))
    photos = sample_photos()
    return [tuple(item.numpy() for item in make(tf.constant(photos[index % len(photos)]),
                                                tf.constant(index, tf.int64)))
            for index in range(count)]


def reference_pairs(count, seed=0):
    """The same from the PyTorch reference (`torch_reference.realesrgan_pair`, x4plus)."""
    import torch

    from benchmarks import torch_reference

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    photos = [photo.astype(np.float32) / 255.0 for photo in sample_photos()]
    pairs = []
    for index in range(count):
        with torch.no_grad():
            lr, hr = torch_reference.realesrgan_pair(torch, photos[index % len(photos)], rng,
                                                     generator=generator)
        pairs.append((lr[0].permute(1, 2, 0).numpy(), hr[0].permute(1, 2, 0).numpy()))
    return pairs


def _luma(image):
    return image @ np.array([0.299, 0.587, 0.114], np.float32)


def pair_statistics(pairs):
    """Per pair: PSNR (dB) of the LR against the HR patch's clean bicubic LR (Pillow); a noise
    estimate (Immerkaer's: the mean absolute response of a Laplacian difference mask on the LR
    luma, times sqrt(pi / 2) / 6, on 0-255); a sharpness measure (the variance of the LR
    luma's 4-neighbour Laplacian, on 0-255). `{name: array}`."""
    from PIL import Image

    rows = {"psnr_vs_bicubic": [], "noise_sigma": [], "sharpness": []}
    for lr, hr in pairs:
        size = lr.shape[1], lr.shape[0]
        clean = np.asarray(Image.fromarray((hr * 255).round().astype(np.uint8)).resize(
            size, Image.BICUBIC), np.float32) / 255.0
        mse = np.mean((lr - clean) ** 2)
        rows["psnr_vs_bicubic"].append(10 * np.log10(1.0 / max(mse, 1e-12)))
        y = _luma(lr) * 255.0
        mask = (y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:] - 2 * y[1:-1, :-2]
                + 4 * y[1:-1, 1:-1] - 2 * y[1:-1, 2:] + y[2:, :-2] - 2 * y[2:, 1:-1]
                + y[2:, 2:])
        rows["noise_sigma"].append(np.sqrt(np.pi / 2) / 6 * np.mean(np.abs(mask)))
        laplacian = (4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2]
                     - y[1:-1, 2:])
        rows["sharpness"].append(np.var(laplacian))
    return {name: np.array(values) for name, values in rows.items()}


def compare_with_reference(count, seed=0):
    """Two-sample Kolmogorov-Smirnov test of each `pair_statistics` measure, keras-sr against
    the PyTorch reference, `count` pairs each: `{name: (statistic, p value, keras-sr median,
    reference median)}`."""
    from scipy import stats

    ours = pair_statistics(keras_sr_pairs(count, seed))
    theirs = pair_statistics(reference_pairs(count, seed))
    return {name: (*stats.ks_2samp(ours[name], theirs[name]), float(np.median(ours[name])),
                   float(np.median(theirs[name]))) for name in ours}


def write_sheet(path, hr_patch):
    """HR and eleven degraded LR versions (x4 nearest) in a 4 x 3 grid, each over the seed and
    its draws."""
    import textwrap

    from PIL import Image, ImageDraw

    from keras_sr.data.images import read_image, write_image
    from keras_sr.data.real_degradations import describe_draws

    hr = read_image(os.path.join(SAMPLES, "astronaut.png"))[100:100 + hr_patch,
                                                            150:150 + hr_patch]
    hr_float = tf.constant(hr, tf.float32) / 255.0
    run = tf.function(lambda image, seed: degrade(image, 4, seed, return_draws=True))
    panels = [(hr, [f"HR {hr_patch} x {hr_patch}", "(each LR below enlarged x4, nearest)"])]
    for seed in range(11):
        lr, draws = run(hr_float, tf.constant([0, seed]))
        lr = (lr.numpy() * 255).round().astype(np.uint8).repeat(4, 0).repeat(4, 1)
        lines = [f"seed {seed}"]
        for line in describe_draws(draws, hr.shape[:2], 4):
            lines += textwrap.wrap(line, 42, subsequent_indent="  ")
        panels.append((lr, lines))
    text_height = 11 * max(len(lines) for _, lines in panels) + 4
    gap, columns = 6, 4
    cell_width, cell_height = hr_patch + gap, hr_patch + text_height + gap
    sheet = Image.new("RGB", (columns * cell_width - gap, 3 * cell_height - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for number, (image, lines) in enumerate(panels):
        x, y = (number % columns) * cell_width, (number // columns) * cell_height
        draw.multiline_text((x + 2, y + 2), "\n".join(lines), fill="black", spacing=1)
        sheet.paste(Image.fromarray(image), (x, y + text_height))
    write_image(path, np.asarray(sheet))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hr-patch", type=int, default=256)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--mix-batches", type=int, default=100)
    parser.add_argument("--sheet", help="also write the sheet of degraded examples here")
    parser.add_argument("--compare", type=int, default=0, metavar="N",
                        help="also compare N pairs' statistics with the PyTorch reference "
                             "pipeline's (two-sample KS; needs torch and scipy)")
    parser.add_argument("--pieces", type=int, default=0, metavar="N",
                        help="instead, time each piece of a pair alone on one core (median "
                             "of N) and exit")
    args = parser.parse_args(argv)
    if args.pieces:
        print(f"each piece alone, one thread, median of {args.pieces} (ms); "
              f"{describe_device()}, {platform.machine()}")
        for name, seconds in piece_times(args.pieces).items():
            print(f"  {name}: {1000 * seconds:.2f}")
        return 0
    if args.compare:
        print(f"keras-sr against the PyTorch reference, {args.compare} pairs each from the "
              "bundled photos (KS statistic, p value, medians):")
        for name, (statistic, p_value, ours, theirs) in compare_with_reference(
                args.compare).items():
            print(f"  {name}: D = {statistic:.3f}, p = {p_value:.3f}; median {ours:.3f} "
                  f"(keras-sr) vs {theirs:.3f} (reference)")
    real = pairs_per_second(DegradationOptions(), args.hr_patch, args.batch, args.batches)
    bicubic = pairs_per_second(None, args.hr_patch, args.batch, args.batches)
    print(f"HR {args.hr_patch}, batch {args.batch}, {describe_device()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"real degradations: {real[0]:.1f} pairs/s, {1000 * real[1]:.1f} CPU ms per pair; "
          f"bicubic LR: {bicubic[0]:.1f} pairs/s, {1000 * bicubic[1]:.2f} CPU ms per pair "
          f"(medians of {args.batches} batches; CPU time over them all)")
    print(f"batch mix over {args.mix_batches} batches of {args.batch} (the reference: every "
          "pair of a batch shares each of these):")
    for name, row in batch_mix(args.mix_batches, args.batch, args.hr_patch).items():
        print(f"  {name}: all pairs the same in {100 * row['all_same']:.0f}% of batches, "
              f"{row['mean_distinct']:.2f} distinct values per batch")
    if args.sheet:
        write_sheet(args.sheet, args.hr_patch)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    main()
