"""Training configuration: frozen dataclasses, strict overrides, validation.

Precedence (as in the TF Model Garden): a named experiment (`training/experiments.py`), then a
YAML file (`--config run.yaml`), then `--set section.key=value` overrides; the result is validated
and saved in the run directory. Unknown keys are errors that name the key, never ignored.
"""

import dataclasses
import json
import re
import typing

import yaml

from keras_sr.data.degradation_options import DegradationOptions

GENERATORS = ("rrdbnet", "srresnet", "srvgg_compact")
DISCRIMINATORS = ("none", "srgan", "vgg_style", "unet_sn")
PIXEL_LOSSES = ("l1", "mse")
# vgg19_realesrgan: conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before ReLU, weighted 0.1, 0.1,
# 1, 1, 1 (Real-ESRGAN's recipe).
PERCEPTUAL_LAYERS = ("none", "vgg19_54_before_relu", "vgg19_54_after_relu", "vgg19_realesrgan")
ADVERSARIAL_LOSSES = ("none", "standard", "relativistic")
SCHEDULES = ("step", "cosine")
BEST_METRICS = ("psnr_y", "niqe", "lpips")
# keras_sr.precision's names (auto picks per device), and Keras' policy names for the two
# mixed ones.
PRECISIONS = ("auto", "float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    generator: str = "rrdbnet"
    scale: int = 4
    # What the generator repeats: RRDBs (rrdbnet), residual blocks (srresnet) or hidden
    # convolutions (srvgg_compact); training.fit.build_generator maps it.
    num_blocks: int = 23
    num_features: int = 64
    growth_channels: int = 32
    discriminator: str = "none"
    discriminator_features: int = 64


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train: tuple[str, ...] = ()  # HR folders / files / globs; LR made with MATLAB bicubic
    train_lr: str = ""  # LR folder paired with a single `train` folder (DIV2K layout)
    tfds: str = ""  # a tensorflow-datasets name, e.g. div2k/bicubic_x4
    tfrecords: str = ""  # a glob of make_tfrecords shards
    validation: tuple[str, ...] = ()  # HR images for validation PSNR / SSIM
    hr_patch_size: int = 128
    batch_size: int = 16
    cache: str = "auto"
    seed: int = 0
    # Random horizontal flips and 90-degree rotations of each patch (BasicSR's use_hflip /
    # use_rot); the Real-ESRGAN recipes flip but do not rotate.
    flip: bool = True
    rotate: bool = True
    # "bicubic" (the papers' LR), or "realesrgan": LR patches made from the HR patches by
    # Real-ESRGAN's second-order degradation (keras_sr.data.real_degradations, x4plus values).
    degradation: str = "bicubic"


@dataclasses.dataclass(frozen=True)
class LossConfig:
    pixel: str = "l1"
    pixel_weight: float = 1.0
    perceptual: str = "none"
    perceptual_criterion: str = "l1"
    perceptual_feature_scale: float = 1.0
    perceptual_weight: float = 0.0
    adversarial: str = "none"
    adversarial_weight: float = 0.0
    # Which terms compare against the unsharp-masked HR instead of the HR (Real-ESRGAN's
    # l1_gt_usm, percep_gt_usm and gan_gt_usm; the last is what the discriminator sees as real).
    pixel_sharpened: bool = False
    perceptual_sharpened: bool = False
    adversarial_sharpened: bool = False
    # "imagenet" (Keras' Caffe VGG19, SRGAN's), "torchvision" (vgg19-dcbb9e9d.pth, ESRGAN's),
    # or the path of either file (.h5 / .pth); see keras_sr.losses.perceptual.
    vgg_weights: str = "imagenet"


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    milestones: tuple[int, ...] = ()  # steps at which the rate is multiplied by `decay`
    decay: float = 0.5
    schedule: str = "step"  # "step" (milestones) or "cosine" (to 0 at train.steps)
    warmup_steps: int = 0  # linear warm-up from 0 over these steps, before either schedule


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    log_every: int = 100
    validate_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    precision: str = "auto"  # bfloat16 where the device computes it natively, else float32
    ema_decay: float = 0.0  # 0 disables the generator EMA
    best_metric: str = "psnr_y"  # what chooses generator_best.keras: psnr_y, niqe or lpips
    # Length of the learning-rate schedules (cosine's end, the warm-up's share); 0: train.steps
    # of the run's first segment, kept when a resume raises train.steps.
    schedule_steps: int = 0
    init_from: str = ""  # a .keras generator or a run directory (second stages)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str = "custom"
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()
    g_optimizer: OptimizerConfig = OptimizerConfig()
    d_optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    # Real-ESRGAN's degradation, used when data.degradation=realesrgan (x4plus values).
    degradation: DegradationOptions = DegradationOptions()


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message names it."""


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true / false. YAML 1.1 (PyYAML's default) also reads
    yes / no / on / off as booleans, so `--set data.cache=no` arrived as False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def _load(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def _coerce(value, field_type, key):
    """Converts a YAML / command-line value to the dataclass field's type, or says why not."""
    origin = typing.get_origin(field_type)
    if origin is tuple:
        item_type = typing.get_args(field_type)[0]
        if isinstance(value, str):
            value = [part for part in value.split(",") if part] if value else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_coerce(item, item_type, key) for item in value)
    if field_type is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if field_type is int and isinstance(value, bool):
        raise ConfigError(f"{key} must be int, got {value!r}")
    if field_type in (int, float) and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string; numbers are numbers however spelled.
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key} must be {field_type.__name__}, got {value!r}") from None
    if field_type is float and isinstance(value, int):
        return float(value)
    if field_type is int and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key} must be int, got {value!r}")
        return int(value)
    if not isinstance(value, field_type):
        raise ConfigError(f"{key} must be {field_type.__name__}, got {value!r}")
    return value


# Keys earlier versions wrote (a run's config.json) and the keys that replaced them, each set to
# the old key's value, so that those runs still resume.
RENAMED = {"loss.sharpen_targets": ("pixel_sharpened", "perceptual_sharpened")}


def merge(config, updates, prefix=""):
    """A copy of the dataclass `config` with the nested dict `updates` applied, strictly."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix or 'the configuration'} must be a mapping, got {updates!r}")
    for old in [key for key in updates if f"{prefix}{key}" in RENAMED]:
        value = updates[old]
        updates = {key: item for key, item in updates.items() if key != old}
        for new in RENAMED[f"{prefix}{old}"]:
            updates.setdefault(new, value)
    fields = {field.name: field for field in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown configuration key {dotted!r} (known: "
                              f"{', '.join(prefix + name for name in fields)})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value, f"{dotted}.")
        else:
            changes[key] = _coerce(value, hints[key], dotted)
    return dataclasses.replace(config, **changes)


def parse_override(text):
    """`section.key=value` -> nested dict; the value is parsed as YAML (numbers, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set needs section.key=value, got {text!r}")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set needs section.key=value, got {text!r}")
    try:
        value = _load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {dotted}: cannot parse {raw!r}: {error}") from None
    if value is None:
        value = ""
    nested = value
    for part in reversed(parts):
        nested = {part: nested}
    return nested


def load_yaml(path):
    try:
        with open(path, encoding="utf-8") as handle:
            content = _load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no such config file: {path!r}") from None
    except IsADirectoryError:
        raise ConfigError(f"--config {path} is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path} is not a text (UTF-8 YAML) file") from None
    except OSError as error:
        raise ConfigError(f"cannot read --config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return content or {}


def validate(config):
    """Raises ConfigError naming the first key whose value cannot work; returns config."""
    def require(condition, key, message):
        if not condition:
            raise ConfigError(f"{key}: {message}")

    model, data, loss, train = config.model, config.data, config.loss, config.train
    require(model.generator in GENERATORS, "model.generator", f"one of {GENERATORS}")
    # The networks say what they support (TensorFlow-free, so that a configuration is checked
    # before TensorFlow starts); the compact model takes any scale, its recipes 1-4.
    from keras_sr.architectures import DISCRIMINATOR_INPUT_MULTIPLES, GENERATOR_SCALES

    scales = GENERATOR_SCALES.get(model.generator, (1, 2, 3, 4))
    require(model.scale in scales, "model.scale", f"{model.generator} supports {scales}")
    require(model.discriminator in DISCRIMINATORS, "model.discriminator",
            f"one of {DISCRIMINATORS}")
    for key in ("num_blocks", "num_features", "growth_channels", "discriminator_features"):
        require(getattr(model, key) >= 1, f"model.{key}", "must be at least 1")
    require(sum(bool(x) for x in (data.train, data.tfds, data.tfrecords)) == 1, "data.train",
            "give exactly one of data.train (HR folders), data.tfds or data.tfrecords")
    require(not data.train_lr or len(data.train) == 1, "data.train_lr",
            "pairs with exactly one data.train folder")
    require(data.hr_patch_size % model.scale == 0, "data.hr_patch_size",
            f"{data.hr_patch_size} is not a multiple of model.scale {model.scale}")
    require(data.batch_size >= 1, "data.batch_size", "must be at least 1")
    require(data.cache in ("auto", "yes", "no"), "data.cache", "auto, yes or no")
    require(data.degradation in ("bicubic", "realesrgan"), "data.degradation",
            "bicubic or realesrgan")
    from keras_sr.data.degradation_options import crop_pad_problem, problems

    for key, message in problems(config.degradation):
        require(False, key, message)
    if data.degradation == "realesrgan":
        message = crop_pad_problem(config.degradation.crop_pad_size, data.hr_patch_size,
                                   model.scale)
        require(message is None, "degradation.crop_pad_size", message)
    # The sharpening's 51-tap blur reflects 25 pixels at each border.
    for term in ("pixel", "perceptual", "adversarial"):
        require(not getattr(loss, f"{term}_sharpened") or data.hr_patch_size > 25,
                f"loss.{term}_sharpened",
                f"needs data.hr_patch_size above 25, got {data.hr_patch_size}")
    require(loss.pixel in PIXEL_LOSSES, "loss.pixel", f"one of {PIXEL_LOSSES}")
    require(loss.perceptual in PERCEPTUAL_LAYERS, "loss.perceptual", f"one of {PERCEPTUAL_LAYERS}")
    require(loss.perceptual_criterion in PIXEL_LOSSES, "loss.perceptual_criterion",
            f"one of {PIXEL_LOSSES}")
    require(loss.adversarial in ADVERSARIAL_LOSSES, "loss.adversarial",
            f"one of {ADVERSARIAL_LOSSES}")
    gan = loss.adversarial != "none"
    require(gan == (model.discriminator != "none"), "model.discriminator",
            "a discriminator goes with an adversarial loss, and only with one")
    if model.discriminator != "none":
        multiple = DISCRIMINATOR_INPUT_MULTIPLES[model.discriminator]
        require(data.hr_patch_size % multiple == 0, "data.hr_patch_size",
                f"the {model.discriminator} discriminator needs a multiple of {multiple}")
    require(loss.perceptual != "none" or loss.perceptual_weight == 0,
            "loss.perceptual_weight", "is set but loss.perceptual is none")
    require(loss.perceptual == "none" or loss.perceptual_weight > 0, "loss.perceptual",
            f"is {loss.perceptual} but loss.perceptual_weight is {loss.perceptual_weight}")
    require(gan or loss.pixel_weight > 0 or loss.perceptual_weight > 0, "loss.pixel_weight",
            "is 0 with no perceptual or adversarial loss: nothing would be trained")
    require(train.steps >= 1, "train.steps", "must be at least 1")
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(config, name)
        require(optimizer.learning_rate > 0, f"{name}.learning_rate", "must be positive")
        require(list(optimizer.milestones) == sorted(optimizer.milestones),
                f"{name}.milestones", "must be increasing")
        require(optimizer.schedule in SCHEDULES, f"{name}.schedule", f"one of {SCHEDULES}")
        require(not (optimizer.schedule == "cosine" and optimizer.milestones),
                f"{name}.milestones", "are for the step schedule, not cosine")
        require(0 <= optimizer.warmup_steps < train.steps, f"{name}.warmup_steps",
                f"{optimizer.warmup_steps} is not in [0, train.steps) = [0, {train.steps})")
    for key in ("log_every", "validate_every", "checkpoint_every", "keep_checkpoints"):
        require(getattr(train, key) >= 1, f"train.{key}", "must be at least 1")
    require(train.precision in PRECISIONS, "train.precision", f"one of {PRECISIONS}")
    require(0.0 <= train.ema_decay < 1.0, "train.ema_decay", "in [0, 1)")
    require(train.best_metric in BEST_METRICS, "train.best_metric", f"one of {BEST_METRICS}")
    require(train.best_metric == "psnr_y" or bool(data.validation), "train.best_metric",
            f"{train.best_metric} needs held-out images (data.validation)")
    require(train.schedule_steps >= 0, "train.schedule_steps", "must be 0 (train.steps) or more")
    for name in ("g_optimizer", "d_optimizer"):
        warmup = getattr(config, name).warmup_steps
        require(not train.schedule_steps or warmup < train.schedule_steps,
                f"{name}.warmup_steps", f"{warmup} is not below train.schedule_steps "
                f"{train.schedule_steps}")
    return config


def to_dict(config):
    return dataclasses.asdict(config)


def to_json(config):
    return json.dumps(to_dict(config), indent=2)


def from_dict(content):
    return validate(merge(ExperimentConfig(), content))
