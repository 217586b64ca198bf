"""`python -m training.fit`: trains a keras-sr model.

    python -m training.fit [EXPERIMENT] [--config run.yaml] [--set section.key=value ...]
        [--output DIR] [--init-from RUN_OR_MODEL] [--list]

EXPERIMENT defaults to `quick`: a small RRDBNet on the bundled sample photos, about ten minutes
on a 2-core CPU. Precedence: experiment, then the YAML file, then `--set`; the resolved config
is saved as `config.json` in the run directory (default `runs/<experiment>-<timestamp>`).
Re-running with the same `--output` resumes from its last checkpoint. SIGINT / SIGTERM save a
checkpoint and exit; a non-finite loss stops the run, naming the step, and keeps the last good
checkpoint. This is the only module that maps configuration strings to classes.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import zipfile

if __name__ == "__main__":
    os.environ["KERAS_SR_PARSING"] = "1"  # answer --help before TensorFlow: keras_sr.startup

# isort: split
from keras_sr.outputs import first_paragraph
from training import config as config_lib
from training.experiments import EXPERIMENTS


def parse_args(argv, prog="python -m training.fit"):
    parser = argparse.ArgumentParser(prog=prog, description=first_paragraph(__doc__))
    parser.add_argument("experiment", nargs="?", default="quick",
                        help=f"one of {', '.join(EXPERIMENTS)} (default: quick)")
    parser.add_argument("--config", help="a YAML file of overrides")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one value (repeatable)")
    parser.add_argument("-o", "--output", help="run directory (default runs/<experiment>-<time>)")
    parser.add_argument("--init-from", help="generator to start from: a .keras file or a run "
                                            "directory (the second stage of a recipe)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log lines (hidden by default)")
    return parser, parser.parse_args(argv)


def resolve_config(experiment, config_path=None, overrides=(), init_from=None, log=None):
    if experiment not in EXPERIMENTS:
        raise config_lib.ConfigError(
            f"unknown experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}")
    default = EXPERIMENTS[experiment]()
    config = default
    if config_path:
        config = config_lib.merge(config, config_lib.load_yaml(config_path))
    for override in overrides:
        config = config_lib.merge(config, config_lib.parse_override(override))
    if init_from:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, init_from=init_from))
    return config_lib.validate(fit_warmup(config, default, log))


def fit_warmup(config, default, log=None):
    """A warm-up the experiment set for its own length, scaled to a shorter run (a smoke test
    of `quick` with train.steps=30 keeps the same share of warm-up), with a note. A warm-up
    the user set is left for validation to judge."""
    changes = {}
    for name in ("g_optimizer", "d_optimizer"):
        optimizer, original = getattr(config, name), getattr(default, name)
        if optimizer.warmup_steps and optimizer.warmup_steps == original.warmup_steps \
                and optimizer.warmup_steps >= config.train.steps >= 1:
            scaled = optimizer.warmup_steps * config.train.steps // default.train.steps
            changes[name] = dataclasses.replace(optimizer, warmup_steps=scaled)
            if log:
                log(f"note: {name}.warmup_steps {optimizer.warmup_steps} does not fit "
                    f"train.steps {config.train.steps}; scaled to {scaled} (the experiment's "
                    f"share, {optimizer.warmup_steps} of {default.train.steps})")
    return dataclasses.replace(config, **changes) if changes else config


def prepare_run_dir(run_dir, config, write=True):
    """Saves the config in a new run directory, or checks it against the one being resumed;
    returns the config to run, with `train.schedule_steps` resolved.

    Only `train.steps` (to train longer) and `train.schedule_steps` may change on resume;
    anything else needs a new directory, so a run never mixes two configurations. The
    learning-rate schedules keep the length the run started with (`train.schedule_steps`, or
    its first `train.steps`), so a resume that trains longer does not make the rate jump; a
    cosine schedule then stays at its final rate, 0, past its end, and `--set
    train.schedule_steps=N` stretches it over N steps instead (the rate continues from where
    the stretched curve is at the step reached). `write=False` (workers other than the chief)
    checks and resolves without writing anything.
    """
    path = os.path.join(run_dir, "config.json")
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                saved = config_lib.from_dict(json.load(handle))
        except (ValueError, OSError) as error:  # ConfigError and JSONDecodeError included
            raise config_lib.ConfigError(f"{path} cannot be read back ({error}); resume "
                                         "needs the run's own config.json") from None
        saved_for_compare = dataclasses.replace(saved, train=dataclasses.replace(
            saved.train, steps=config.train.steps,
            schedule_steps=config.train.schedule_steps))
        if saved_for_compare != config:
            old, new = config_lib.to_dict(saved_for_compare), config_lib.to_dict(config)
            changed = [f"{section}.{key}" for section in new if isinstance(new[section], dict)
                       for key in new[section] if new[section][key] != old[section][key]]
            raise config_lib.ConfigError(
                f"{run_dir} holds a run with another configuration ({', '.join(changed)} "
                "differ); use a new --output, or the same settings to resume")
        schedule_steps = config.train.schedule_steps or saved.train.schedule_steps \
            or saved.train.steps
        return dataclasses.replace(config, train=dataclasses.replace(
            config.train, schedule_steps=schedule_steps))
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, schedule_steps=config.train.schedule_steps or config.train.steps))
    if not write:
        return config
    os.makedirs(run_dir, exist_ok=True)
    from training.loop import write_json

    write_json(path, config_lib.to_dict(config))
    return config


def cluster_role():
    """(is_chief, task_index) from TF_CONFIG: the chief, or worker 0 when there is no chief."""
    if not os.environ.get("TF_CONFIG"):
        return True, 0
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
        task = tf_config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise config_lib.ConfigError(f"TF_CONFIG is not a valid cluster description: {error}")
    has_chief = bool(tf_config.get("cluster", {}).get("chief"))
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)
    return chief, index if task_type == "worker" else -1


def make_strategy():
    """MultiWorkerMirroredStrategy when TF_CONFIG is set, else mirrored over the local GPUs."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def make_source(config, shuffle_seed):
    from keras_sr.data import sources

    data, scale = config.data, config.model.scale
    # Real-ESRGAN pads a small image up to its crop size instead of skipping it.
    min_hr_size = 0 if data.degradation == "realesrgan" else data.hr_patch_size
    if data.tfds:
        return sources.tfds_source(data.tfds, scale, min_hr_size=min_hr_size)
    if data.tfrecords:
        return sources.tfrecord_source(data.tfrecords, scale, min_hr_size=min_hr_size)
    if data.train_lr:
        return sources.paired_source(data.train[0], data.train_lr, scale,
                                     min_hr_size=min_hr_size, shuffle_seed=shuffle_seed)
    return sources.folder_source(list(data.train), scale, min_hr_size=min_hr_size,
                                 shuffle_seed=shuffle_seed)


def build_generator(model_config):
    from keras_sr.models import RRDBNet, SRResNet, SRVGGNetCompact

    if model_config.generator == "srvgg_compact":
        # Real-ESRGAN's compact model: num_blocks counts its hidden convs.
        return SRVGGNetCompact(scale=model_config.scale, num_convs=model_config.num_blocks,
                               num_features=model_config.num_features, name="generator")
    if model_config.generator == "rrdbnet":
        return RRDBNet(scale=model_config.scale, num_blocks=model_config.num_blocks,
                       num_features=model_config.num_features,
                       growth_channels=model_config.growth_channels, name="generator")
    return SRResNet(scale=model_config.scale, num_blocks=model_config.num_blocks,
                    num_features=model_config.num_features, name="generator")


def build_discriminator(config):
    from keras_sr.models import SRGANDiscriminator, UNetDiscriminatorSN, VGGStyleDiscriminator

    classes = {"srgan": SRGANDiscriminator, "vgg_style": VGGStyleDiscriminator,
               "unet_sn": UNetDiscriminatorSN}
    return classes[config.model.discriminator](
        input_size=config.data.hr_patch_size,
        num_features=config.model.discriminator_features, name="discriminator")


def pixel_loss(name):
    import keras

    return {"l1": keras.losses.MeanAbsoluteError, "mse": keras.losses.MeanSquaredError}[name]()


# Real-ESRGAN's perceptual loss: conv1_2, conv2_2, conv3_4, conv4_4, conv5_4, before ReLU.
REALESRGAN_VGG_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4",
                         "block5_conv4")
REALESRGAN_VGG_WEIGHTS = (0.1, 0.1, 1.0, 1.0, 1.0)


def build_perceptual_loss(loss_config, feature_extractor_factory=None):
    """The VGG19 perceptual loss; a `feature_extractor_factory` replaces VGG (tests inject a
    tiny network through it; it is called inside the strategy scope)."""
    from keras_sr.losses.perceptual import PerceptualLoss, vgg19_features

    layers, layer_weights = "block5_conv4", None
    if loss_config.perceptual == "vgg19_realesrgan":
        layers = REALESRGAN_VGG_LAYERS
        layer_weights = list(REALESRGAN_VGG_WEIGHTS)
    if feature_extractor_factory is not None:
        feature_extractor = feature_extractor_factory()
        if layer_weights is not None:
            layer_weights = layer_weights[-1:]  # a test's one-output network
    else:
        feature_extractor = vgg19_features(
            layers, before_activation=loss_config.perceptual != "vgg19_54_after_relu",
            weights=loss_config.vgg_weights)
    return PerceptualLoss(feature_extractor, loss_config.perceptual_criterion,
                          loss_config.perceptual_feature_scale, layer_weights=layer_weights)


def learning_rate_schedule(optimizer_config, total_steps):
    """The configured rate: a constant, step decays at the milestones, or cosine decay to 0 at
    `total_steps`; any of them after a linear warm-up."""
    import keras

    from keras_sr.trainers.schedules import LinearWarmup

    rate = optimizer_config.learning_rate
    warmup = optimizer_config.warmup_steps
    if optimizer_config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate, total_steps - warmup, warmup_target=rate if warmup else None,
            warmup_steps=warmup)
    if optimizer_config.milestones:
        rates = [rate * optimizer_config.decay**index
                 for index in range(len(optimizer_config.milestones) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            list(optimizer_config.milestones), rates)
    if warmup:
        rate = LinearWarmup(rate, warmup)
    return rate


def training_precision(configured):
    """`(precision, reason)` for `train.precision` (`keras_sr.precision` names, `auto`, or
    Keras' `mixed_*` policy names)."""
    from keras_sr import precision as precisions

    short = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(configured,
                                                                          configured)
    chosen, reason = precisions.resolve(short)
    if chosen == "float16":
        reason += "; the loss is scaled so that float16 gradients do not underflow"
    return chosen, reason


def build_optimizer(optimizer_config, variables, precision, total_steps):
    import keras

    from keras_sr.trainers import PyTorchAdam

    rate = learning_rate_schedule(optimizer_config, total_steps)
    # PyTorch's Adam, which trained the papers' reference models, step for step.
    optimizer = PyTorchAdam(rate, beta_1=optimizer_config.beta_1, beta_2=optimizer_config.beta_2)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Built here, inside the strategy scope, on the variables it will update.
    optimizer.build(variables)
    return optimizer


def build_trainer(config, generator, discriminator, feature_extractor_factory=None):
    from keras_sr.trainers import ESRGAN, SRGAN, PSNRTrainer

    loss = config.loss
    perceptual = build_perceptual_loss(loss, feature_extractor_factory) \
        if loss.perceptual != "none" else None
    if loss.adversarial == "none":
        return PSNRTrainer(generator, config.model.scale, pixel_loss(loss.pixel),
                           perceptual_loss=perceptual, pixel_weight=loss.pixel_weight,
                           perceptual_weight=loss.perceptual_weight,
                           ema_decay=config.train.ema_decay,
                           pixel_sharpened=loss.pixel_sharpened,
                           perceptual_sharpened=loss.perceptual_sharpened)
    trainer_class = SRGAN if loss.adversarial == "standard" else ESRGAN
    return trainer_class(generator, discriminator, perceptual, scale=config.model.scale,
                         perceptual_weight=loss.perceptual_weight,
                         adversarial_weight=loss.adversarial_weight,
                         pixel_weight=loss.pixel_weight, pixel_loss=pixel_loss(loss.pixel),
                         ema_decay=config.train.ema_decay,
                         pixel_sharpened=loss.pixel_sharpened,
                         perceptual_sharpened=loss.perceptual_sharpened,
                         adversarial_sharpened=loss.adversarial_sharpened)


def init_from_path(init_from):
    """The `.keras` file `train.init_from` names (a run directory's generator_last.keras), or
    None for a preset; ConfigError when there is none."""
    from keras_sr import presets

    if presets.is_preset(init_from):
        return None
    path = os.path.join(init_from, "generator_last.keras") if os.path.isdir(init_from) \
        else init_from
    if not os.path.isfile(path):
        raise config_lib.ConfigError(f"train.init_from: no generator at {path!r}")
    return path


def load_initial_generator(init_from, generator):
    """Copies weights from a `.keras` generator, a run directory or a preset (fine-tuning the
    published Real-ESRGAN weights) into `generator`."""
    from keras_sr import presets

    path = init_from_path(init_from) or init_from
    try:
        source = presets.load_model(path)
    except (ValueError, OSError, RuntimeError) as error:
        raise config_lib.ConfigError(f"train.init_from: {error}") from None
    shapes = [tuple(w.shape) for w in source.weights]
    if shapes != [tuple(w.shape) for w in generator.weights]:
        raise config_lib.ConfigError(
            f"train.init_from: {path} is a {type(source).__name__} of another architecture "
            f"than this run's {type(generator).__name__}")
    generator.set_weights(source.get_weights())


def build_run(config, run_dir, feature_extractor_factory=None, log=print):
    """A `training.loop.Run` from the configuration: precision, strategy, networks, trainer,
    optimizers, EMA and checkpoints (restored when the run resumes, else the generator
    initialised from `train.init_from`). Built inside the strategy's scope.

    Raises:
        ConfigError: the run cannot resume (train.steps below the step reached, or no
            checkpoint readable).
    """
    import keras

    from keras_sr import precision as precisions
    from training.checkpoints import RunCheckpoints
    from training.loop import Run

    is_chief, task_index = cluster_role()
    precision, reason = training_precision(config.train.precision)
    log(f"training on {precisions.describe_device()} at {precision} ({reason})")
    from keras_sr import startup

    for variable, (value, why) in startup.SWITCHES.items():
        log(f"set {variable}={value} ({why}; set it yourself to choose)")
    policy = precisions.policy(precision)
    keras.config.set_dtype_policy(policy)
    strategy = make_strategy()
    gan = config.loss.adversarial != "none"
    with strategy.scope():
        # Missing VGG weights stop the run in build_trainer, before any data is read or step run.
        generator = build_generator(config.model)
        discriminator = build_discriminator(config) if gan else None
        trainer = build_trainer(config, generator, discriminator, feature_extractor_factory)
        schedule_steps = config.train.schedule_steps or config.train.steps
        optimizers = {"g_optimizer": build_optimizer(
            config.g_optimizer, generator.trainable_variables, policy, schedule_steps)}
        if gan:
            optimizers["d_optimizer"] = build_optimizer(
                config.d_optimizer, discriminator.trainable_variables, policy, schedule_steps)
        trainer.compile(**optimizers)
        networks = {"generator": generator}
        if gan:
            networks["discriminator"] = discriminator
        ema_generator = trainer.ema_generator
        if ema_generator is not None:
            networks["ema_generator"] = ema_generator
        # Every worker takes part in saving; only the chief writes into the run directory,
        # the others into scratch directories, and all resume from the chief's checkpoints.
        write_dir = run_dir if is_chief else os.path.join(run_dir,
                                                          f".worker-{task_index}-scratch")
        checkpoints = RunCheckpoints(write_dir, config.train.keep_checkpoints,
                                     restore_dir=run_dir, **networks, **optimizers)
        try:
            start_step = checkpoints.restore(log)
        except ValueError as error:
            raise config_lib.ConfigError(str(error)) from None
        if start_step > config.train.steps:
            raise config_lib.ConfigError(
                f"train.steps: {config.train.steps} is below step {start_step}, which "
                f"{run_dir} has already reached; raise train.steps to train longer")
        if start_step:
            log(f"resuming {run_dir} from step {start_step} ({checkpoints.restored})")
        elif config.train.init_from:
            load_initial_generator(config.train.init_from, generator)
            if ema_generator is not None:
                ema_generator.set_weights(generator.get_weights())
            log(f"generator initialised from {config.train.init_from}")
    return Run(config, run_dir, precision, strategy, trainer, generator, optimizers,
               checkpoints, start_step, is_chief, write_dir)


def data_stream(run, source=None):
    """`(source, distributed iterator)` of training batches, continuing where the run stopped
    (see `keras_sr.data.pipeline.element_stream` for how exactly each source resumes)."""
    from keras_sr.data.pipeline import training_dataset

    config = run.config
    if source is None:
        source = make_source(config, shuffle_seed=config.data.seed)
    cache = {"auto": "auto", "yes": True, "no": False}[config.data.cache]
    degradation = config.degradation if config.data.degradation == "realesrgan" else None
    dataset = training_dataset(source, config.data.hr_patch_size, config.model.scale,
                               config.data.batch_size, seed=config.data.seed, cache=cache,
                               flip=config.data.flip, rotate=config.data.rotate,
                               start_step=run.start_step, degradation=degradation)
    return source, iter(run.strategy.experimental_distribute_dataset(dataset))


def train(config, run_dir, feature_extractor_factory=None, log=print, source=None,
          validation=None):
    """Runs (or resumes) the configured training in `run_dir`; returns the exit status.
    `source` and `validation`: the training source and the held-out images, already made by
    `check_inputs` (main makes them first, to check the data before anything is built); made
    here when not given (the source again when resuming, seeded by the step).

    Raises:
        ConfigError: the run cannot resume (see `build_run`).
        DataError: no training pair could be decoded."""
    from training import loop

    stopwatch = loop.Stopwatch()
    run = build_run(config, run_dir, feature_extractor_factory, log)
    source, iterator = data_stream(run, source)
    if not run.is_chief:
        validation = None
    elif validation is None and config.data.validation:
        validation = make_validation(config, log)
    reporter = loop.Reporter(run, validation, log)
    try:
        result = loop.train_loop(run, iterator, source, validation, log, reporter)
    finally:
        reporter.writer.close()
    if result.status == loop.EXIT_NON_FINITE:
        return result.status
    return loop.finish(run, result, source, validation, reporter, stopwatch, log)


def plan_run_dir(run_dir):
    """Refuses a run directory that is a file or cannot be written, before anything is built.
    Returns whether it exists already."""
    from keras_sr import outputs

    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise config_lib.ConfigError(f"--output {run_dir} is a file, not a run directory")
    try:
        outputs.writable_directory(run_dir, what="run directory")
    except outputs.OutputError as error:
        raise config_lib.ConfigError(str(error)) from None
    return os.path.isdir(run_dir)


def make_validation(config, log=print):
    """The held-out images' `Validation`: PSNR / SSIM, plus NIQE for GAN runs and for
    `train.best_metric=niqe`, and LPIPS for GAN runs when its weights are at hand (one line
    saying why not otherwise) and for `train.best_metric=lpips` (required then).

    Raises:
        ConfigError: the best metric cannot be computed on these images or without weights.
    """
    from keras_sr.pretrained_files import WeightsUnavailable
    from training.validation import Validation

    best = config.train.best_metric
    gan = config.loss.adversarial != "none"
    extra, lpips_metric = [], None
    if gan or best == "niqe":
        extra.append("niqe")
    if gan or best == "lpips":
        from keras_sr.lpips import LPIPS

        try:
            lpips_metric = LPIPS("alex", download=best == "lpips")
            extra.append("lpips")
        except WeightsUnavailable as error:
            if best == "lpips":
                raise config_lib.ConfigError(f"train.best_metric: {error}") from None
            log(f"note: validation without LPIPS ({error})")
    try:
        return Validation(config.data.validation, config.model.scale, extra, lpips_metric,
                          required=(best,))
    except ValueError as error:
        raise config_lib.ConfigError(f"data.validation: {error}") from None


def check_inputs(config, log=print):
    """Everything the run reads, checked before any model is built: the training source
    (every image's header), the held-out images (decoded) and the generator to start from.
    Returns `(source, validation)`; raises ConfigError naming what is wrong."""
    from keras_sr.data.images import UnreadableImageError

    try:
        source = make_source(config, shuffle_seed=config.data.seed)
    except (ValueError, OSError) as error:
        raise config_lib.ConfigError(f"training data: {error}") from None
    validation = None
    if config.data.validation:
        try:
            validation = make_validation(config, log)
        except UnreadableImageError as error:
            raise config_lib.ConfigError(f"data.validation: {error}") from None
    if config.train.init_from:
        path = init_from_path(config.train.init_from)
        if path is not None and not zipfile.is_zipfile(path):
            raise config_lib.ConfigError(f"train.init_from: {path} is not a .keras model file "
                                         "(not a zip archive)")
    return source, validation


def fail(message, prog="python -m training.fit"):
    """A user's mistake: one line on stderr, status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv=None, prog="python -m training.fit"):
    parser, args = parse_args(argv, prog)
    if args.list:
        for name, factory in EXPERIMENTS.items():
            print(f"{name:<14}{first_paragraph(factory.__doc__)}")
        return 0
    try:
        config = resolve_config(args.experiment, args.config, args.set, args.init_from,
                                log=lambda line: print(line, file=sys.stderr))
        run_dir = args.output or os.path.join(
            "runs", f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        existed = plan_run_dir(run_dir)
    except config_lib.ConfigError as error:
        return fail(error, prog)
    # The configuration is good: TensorFlow starts, and the data are checked with it.
    from keras_sr import startup

    startup.load("train")
    try:
        source, validation = check_inputs(config, log=lambda line: print(line, file=sys.stderr))
    except config_lib.ConfigError as error:
        return fail(error, prog)
    from keras_sr.losses.perceptual import VGGWeightsUnavailable
    from training.loop import DataError

    try:
        config = prepare_run_dir(run_dir, config, write=cluster_role()[0])
        return train(config, run_dir, source=source, validation=validation)
    except (VGGWeightsUnavailable, config_lib.ConfigError, DataError) as error:
        if not existed and not os.path.isdir(os.path.join(run_dir, "checkpoints")):
            # Nothing of this run is worth keeping: leave no directory behind.
            shutil.rmtree(run_dir, ignore_errors=True)
        return fail(error, prog)


if __name__ == "__main__":
    sys.exit(main())
