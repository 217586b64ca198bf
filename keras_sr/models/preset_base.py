"""What every network with published weights shares: `from_preset`, in one place."""


class FromPreset:
    """Mixin for the networks: `cls.from_preset(name)` (keras-hub's spelling)."""

    @classmethod
    def from_preset(cls, preset):
        """A published model by name, e.g. `RRDBNet.from_preset("realesrgan-x4plus")`, as an
        instance of this class; `keras_sr.presets.list()` names them. The official release
        file is fetched, checked and converted once, then loaded from the cache
        (`keras_sr.zoo`)."""
        from keras_sr import presets

        return presets.load_as(cls, preset)
