"""Pretrained weight files keras-sr reads but does not ship (VGG19 for the perceptual loss, the
LPIPS trunks): where they are looked for, how they are checked, and reading torchvision's state
dicts without running code from them.

A file is found, in order, at an explicit path, through its environment variable, in Keras' or
PyTorch's cache (checked against its checksum), or downloaded there with a 30 s timeout; when
none works, `WeightsUnavailable` says how to supply it. Nothing trains or measures with a
random network instead.
"""

import dataclasses
import hashlib
import http.client
import os
import urllib.request

import numpy as np

DOWNLOAD_TIMEOUT_SECONDS = 30


class WeightsUnavailable(RuntimeError):
    """A pretrained weights file could not be found, fetched or read; the message says how to
    supply it."""


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """A published weights file.

    Attributes:
        name: its file name.
        url: where it is published.
        algorithm, digest: its checksum, or the leading digits of one (torchvision names its
            files after the first hex digits of their SHA-256).
        environment_variable: the variable that may give its path.
        cache: "keras" (~/.keras/models) or "torch" ($TORCH_HOME/hub/checkpoints).
    """

    name: str
    url: str
    algorithm: str
    digest: str
    environment_variable: str
    cache: str = "torch"

    def cache_path(self):
        if self.cache == "keras":
            home = os.environ.get("KERAS_HOME",
                                  os.path.join(os.path.expanduser("~"), ".keras"))
            return os.path.join(home, "models", self.name)
        home = os.environ.get("TORCH_HOME", os.path.join(os.environ.get(
            "XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "torch"))
        return os.path.join(home, "hub", "checkpoints", self.name)

    def verify(self, path):
        return file_digest(path, self.algorithm).startswith(self.digest)


def file_digest(path, algorithm="sha256"):
    """The hex digest of the file at `path`."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DownloadFailed(OSError):
    """A download that did not produce a verified file; the message says why."""


def download_verified(url, target, verify, timeout=None):
    """Fetches `url` into `target` through `target.partial`, which is renamed only once
    `verify(path)` accepts it: a failure (no answer within `timeout` seconds, default
    `DOWNLOAD_TIMEOUT_SECONDS`; a connection closed mid-body; a wrong checksum) leaves neither
    file and raises DownloadFailed saying which."""
    partial = target + ".partial"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        response = urllib.request.urlopen(
            url, timeout=DOWNLOAD_TIMEOUT_SECONDS if timeout is None else timeout)
        with response, open(partial, "wb") as handle:
            received = 0
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                received += len(chunk)
        expected = response.headers.get("Content-Length")
        if expected is not None and expected.isdigit() and received < int(expected):
            # urllib returns a short body without complaint when the connection closes.
            raise http.client.IncompleteRead(b"", int(expected) - received)
    except (OSError, http.client.HTTPException) as failure:
        # HTTPException: a body shorter than its Content-Length (IncompleteRead) and the like.
        if os.path.exists(partial):
            os.remove(partial)
        raise DownloadFailed(f"downloading {url} failed ({type(failure).__name__}: "
                             f"{failure})") from None
    if not verify(partial):
        actual = file_digest(partial)
        os.remove(partial)
        raise DownloadFailed(f"the file downloaded from {url} has the wrong checksum (its "
                             f"sha256 is {actual})")
    os.replace(partial, target)
    return target


def torchvision_file(name, environment_variable):
    """A torchvision ImageNet file, e.g. `vgg19-dcbb9e9d.pth`."""
    return WeightsFile(name, "https://download.pytorch.org/models/" + name, "sha256",
                       name.rsplit("-", 1)[1].split(".")[0], environment_variable)


def resolve(spec, how_to_supply, error=WeightsUnavailable, download=True):
    """The path of `spec`'s file: `$environment_variable`, else a verified copy in the cache,
    else downloaded there (when `download`). `how_to_supply(reason)` makes the message of the
    `error` raised when there is none."""
    from_environment = os.environ.get(spec.environment_variable)
    if from_environment:
        if not os.path.isfile(from_environment):
            raise error(how_to_supply(
                f"{spec.environment_variable}={from_environment!r} is not a file"))
        return from_environment
    cached = spec.cache_path()
    if os.path.isfile(cached) and spec.verify(cached):
        return cached
    if not download:
        raise error(how_to_supply(f"there is no copy at {cached}"))
    try:
        return download_verified(spec.url, cached, spec.verify)
    except DownloadFailed as failure:
        raise error(how_to_supply(str(failure))) from None


def torchvision_convs(path, indices, what, error=WeightsUnavailable):
    """`[[kernel (HWIO), bias], ...]` of the convs `features.<index>` of a torchvision state
    dict, in the order of `indices`, read with keras-sr's safe `.pth` reader. `what` names the
    network in errors ("torchvision's VGG19")."""
    from keras_sr.convert import torch as torch_files
    from keras_sr.convert.errors import ConversionError

    try:
        state_dict = torch_files.load(path)
    except ConversionError as failure:
        raise error(str(failure)) from None
    if isinstance(state_dict, dict) and isinstance(state_dict.get("state_dict"), dict):
        state_dict = state_dict["state_dict"]
    weights = []
    for index in indices:
        keys = (f"features.{index}.weight", f"features.{index}.bias")
        missing = [key for key in keys if not isinstance(state_dict, dict)
                   or key not in state_dict]
        if missing:
            raise error(f"{path} is not {what} state dict (no {missing[0]})")
        kernel, bias = (np.asarray(state_dict[key], np.float32) for key in keys)
        weights.append([kernel.transpose(2, 3, 1, 0), bias])  # OIHW -> HWIO
    return weights
