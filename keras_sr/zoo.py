"""The official ESRGAN and Real-ESRGAN release files by preset name: where each is published, its
SHA-256, and what it holds; fetched into `$KERAS_SR_CACHE/weights`, checked, converted once and
cached as `.keras` under a name carrying the file's hash.

Below the networks: nothing here imports them (the conversion is imported when first needed).

Environment:
    KERAS_SR_CACHE: the cache folder (default `$XDG_CACHE_HOME/keras-sr`, `~/.cache/keras-sr`).
    KERAS_SR_WEIGHTS_URL: a mirror; every file is fetched from `<it>/<file name>` instead.
    KERAS_SR_OFFLINE: 1 / true / yes / on: never download; use what the cache holds.
"""

import dataclasses
import os
import time

from keras_sr import pretrained_files

RELEASES_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/"
REAL_ESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN)"


@dataclasses.dataclass(frozen=True)
class Release:
    """A published weights file.

    Attributes:
        name: the preset name.
        file: the file's published name (also its name in the cache).
        url: where it is published; empty for a file only placed by hand.
        sha256: its SHA-256, or the leading hex digits of it that its name carries.
        network: what it holds, in words ("RRDBNet x4, 23 blocks").
        scale: its SR factor.
        purpose: what it is for.
        licence: the weights' terms.
        parameters: the network's parameter count (a test builds each and counts).
        architecture: (class name, constructor arguments) of the network the file holds, for
            `build`.
        ncnn_preset: the preset of the same model in the ncnn weights package, used when this
            file cannot be had (offline); None when there is none.
    """

    name: str
    file: str
    url: str
    sha256: str
    network: str
    scale: int
    purpose: str
    parameters: int = 0
    architecture: tuple = ()
    licence: str = REAL_ESRGAN_LICENCE
    ncnn_preset: str | None = None


# The hashes are the ones several independent published sources agree on (issue #25); the first
# real download confirms each, and a wrong one fails that download loudly.
RELEASES = {release.name: release for release in (
    Release("realesrgan-x4plus", "RealESRGAN_x4plus.pth",
            RELEASES_URL + "v0.1.0/RealESRGAN_x4plus.pth",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            "RRDBNet x4, 23 blocks", 4, "photos with real-world degradations", 16_697_987,
            ("RRDBNet", {"scale": 4}),
            ncnn_preset="realesrgan-x4plus"),
    Release("realesrgan-x2plus", "RealESRGAN_x2plus.pth",
            RELEASES_URL + "v0.2.1/RealESRGAN_x2plus.pth",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            "RRDBNet x2, 23 blocks, pixel-unshuffled input", 2, "photos, x2", 16_703_171,
            ("RRDBNet", {"scale": 2})),
    Release("realesrgan-x4plus-anime-6b", "RealESRGAN_x4plus_anime_6B.pth",
            RELEASES_URL + "v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            "RRDBNet x4, 6 blocks", 4, "anime illustrations", 4_467_779,
            ("RRDBNet", {"scale": 4, "num_blocks": 6}),
            ncnn_preset="realesrgan-x4plus-anime"),
    Release("realesr-general-x4v3", "realesr-general-x4v3.pth",
            RELEASES_URL + "v0.2.5.0/realesr-general-x4v3.pth",
            "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            "SRVGGNetCompact x4, 32 convs", 4, "photos, fast", 1_213_296,
            ("SRVGGNetCompact", {"scale": 4, "num_convs": 32})),
    Release("realesr-general-wdn-x4v3", "realesr-general-wdn-x4v3.pth",
            RELEASES_URL + "v0.2.5.0/realesr-general-wdn-x4v3.pth",
            "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",
            "SRVGGNetCompact x4, 32 convs", 4, "photos, fast, with denoising", 1_213_296,
            ("SRVGGNetCompact", {"scale": 4, "num_convs": 32})),
    # Sources disagreed on this one (issue #25); b8a83768... is the hash with the file size
    # (2,504,012 bytes) beside it in eight independent places, 3a5ca263... one project's.
    Release("realesr-animevideov3", "realesr-animevideov3.pth",
            RELEASES_URL + "v0.2.5.0/realesr-animevideov3.pth",
            "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
            "SRVGGNetCompact x4, 16 convs", 4, "anime video, fast", 621_424,
            ("SRVGGNetCompact", {"scale": 4, "num_convs": 16}),
            ncnn_preset="realesr-animevideov3-x4"),
    # Only the first hex digits of this one are known: its name carries them.
    Release("esrgan-x4", "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            RELEASES_URL + "v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth", "ff704c30",
            "RRDBNet x4, 23 blocks", 4, "ESRGAN retrained by BasicSR on DF2K+OST (bicubic LR)",
            16_697_987, ("RRDBNet", {"scale": 4}), licence="BSD-3-Clause (Real-ESRGAN release)"),
    # Published on Google Drive only: placed by hand.
    Release("esrgan-x4-paper", "RRDB_ESRGAN_x4.pth", "",
            "65fece06e1ccb48853242aa972bdf00ad07a7dd8938d2dcbdf4221b59f6372ce",
            "RRDBNet x4, 23 blocks (original ESRGAN names)", 4,
            "ESRGAN as the paper published it (bicubic LR)", 16_697_987,
            ("RRDBNet", {"scale": 4}),
            licence="Apache-2.0 (xinntao/ESRGAN)"),
    Release("rrdb-psnr-x4", "RRDB_PSNR_x4.pth", "",
            "f372b59f22929e1bc83fa58d78215c96f976de3b2eaeee736da1b348913da6cc",
            "RRDBNet x4, 23 blocks (original ESRGAN names)", 4,
            "ESRGAN's PSNR-oriented RRDB (bicubic LR)", 16_697_987,
            ("RRDBNet", {"scale": 4}),
            licence="Apache-2.0 (xinntao/ESRGAN)"),
)}

# Earlier preset names, kept working.
ALIASES = {"realesrgan-x4plus-anime": "realesrgan-x4plus-anime-6b",
           "realesr-animevideov3-x4": "realesr-animevideov3"}


class ReleaseUnavailable(RuntimeError):
    """A release file that is not in the cache and could not be fetched; the message says
    where to get it and where to put it."""


def cache_dir():
    """`$KERAS_SR_CACHE`, else `$XDG_CACHE_HOME/keras-sr`, else `~/.cache/keras-sr`."""
    if os.environ.get("KERAS_SR_CACHE"):
        return os.environ["KERAS_SR_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras-sr")


def canonical(name):
    """The preset name `name` stands for (itself, or what an alias names), or None."""
    name = ALIASES.get(name, name)
    return name if name in RELEASES else None


OFFLINE_VARIABLE = "KERAS_SR_OFFLINE"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def offline():
    """KERAS_SR_OFFLINE: on for 1 / true / yes / on, off for 0 / false / no / off or unset,
    in any case and around spaces. Any other value warns (IgnoredSettingWarning) and counts
    as on: it was set for a reason, and not downloading is the reading that does no harm."""
    value = os.environ.get(OFFLINE_VARIABLE, "")
    setting = value.strip().lower()
    if setting in _OFF:
        return False
    if setting not in _ON:
        import warnings

        from keras_sr.precision import IgnoredSettingWarning

        warnings.warn(f"{OFFLINE_VARIABLE}={value!r} is not one of 1, true, yes, on or 0, false, "
                      "no, off: taken as on (no downloads)", IgnoredSettingWarning, stacklevel=2)
    return True


def source_url(release):
    """Where `release` is fetched from: `$KERAS_SR_WEIGHTS_URL/<file>` when a mirror is set."""
    mirror = os.environ.get("KERAS_SR_WEIGHTS_URL")
    if mirror:
        return mirror.rstrip("/") + "/" + release.file
    return release.url


def weights_path(release):
    return os.path.join(cache_dir(), "weights", release.file)


def converted_path(release):
    """The cached `.keras` of `release`, named after the source file's hash."""
    return os.path.join(cache_dir(), "presets", f"{release.name}-{release.sha256[:16]}.keras")


def verified(release, path):
    return pretrained_files.file_digest(path).startswith(release.sha256)


# A fetch that failed is not tried again for this long in the same process: one command can
# look for a preset's weights more than once (the engine choice, then the model), and on a
# network that never answers each try waits out the download timeout.
FAILED_FETCH_MEMORY_SECONDS = 60.0
_failed_fetches = {}  # (url, target): (time.monotonic() of the failure, its message)


def weights_file(release):
    """The path of `release`'s checked file: the cached copy, else fetched into the cache (a
    copy with another hash is fetched again). ReleaseUnavailable, in one line, when neither
    works: the URL, the hash and where to put the file by hand. A fetch that failed less than
    FAILED_FETCH_MEMORY_SECONDS ago in this process fails again with its message, untried."""
    target = weights_path(release)
    if os.path.isfile(target) and verified(release, target):
        return target
    url = source_url(release)

    def unavailable(reason):
        where = f"download {url}" if url else "it is published on Google Drive only: get it"
        return ReleaseUnavailable(
            f"preset {release.name!r}: {reason}; {where} (sha256 {release.sha256}) and put "
            f"it at {target}")

    if not url:
        raise unavailable(f"no copy of {release.file}")
    if offline():
        raise unavailable(f"no copy of {release.file} and KERAS_SR_OFFLINE is set")
    failed = _failed_fetches.get((url, target))
    if failed and time.monotonic() - failed[0] < FAILED_FETCH_MEMORY_SECONDS:
        raise unavailable(failed[1])
    try:
        return pretrained_files.download_verified(
            url, target, lambda path: verified(release, path))
    except pretrained_files.DownloadFailed as failure:
        _failed_fetches[(url, target)] = (time.monotonic(), str(failure))
        raise unavailable(str(failure)) from None


def converted(release):
    """The cached `.keras` file of `release`, fetched and converted on first use."""
    from keras_sr.atomic import save_model_once

    def build():
        from keras_sr.convert import convert

        return convert(weights_file(release), name=release.name.replace("-", "_"))

    return save_model_once(converted_path(release), build)


def cached(release):
    """What the cache holds of `release`: "converted", "file" (not yet converted) or ""."""
    if os.path.isfile(converted_path(release)):
        return "converted"
    return "file" if os.path.isfile(weights_path(release)) else ""


def table():
    """One row per preset (the `keras-sr models` listing): name, network, scale, parameters,
    licence, source, what is cached."""
    return [{"name": release.name, "network": release.network, "scale": release.scale,
             "parameters": release.parameters, "for": release.purpose,
             "licence": release.licence, "source": release.url or "Google Drive (by hand)",
             "cached": cached(release)} for release in RELEASES.values()]


def build(release):
    """`release`'s network, randomly initialised (for sizes and speed without the file), its
    class taken from Keras' registry (so this module imports no network)."""
    import keras

    from keras_sr import startup

    class_name, arguments = release.architecture
    startup.register_everything()
    return keras.saving.get_registered_object(f"keras_sr>{class_name}")(**arguments)
