"""What every network with published weights shares: `from_preset` and `save_to_preset`, in one
place, in keras-hub's shape."""

import json
import os

from keras_sr.presets import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE


class FromPreset:
    """Mixin for the networks.

    `cls.from_preset(preset)` takes a preset name (`keras_sr.presets.list()`), a preset
    directory written by `save_to_preset`, or a remote handle (`hf://owner/name`,
    `kaggle://owner/model/keras/variant`, fetched with the hub's own client when it is
    installed). `model.save_to_preset(directory)` writes keras-hub's layout: `config.json` (the
    model's Keras config, its class named by its registered name), `model.weights.h5`,
    `metadata.json` (versions, parameter count): a fine-tuned model published that way loads
    back with `from_preset`, in keras-sr or any code that has the class registered.
    """

    @classmethod
    def from_preset(cls, preset):
        """The model `preset` names, as an instance of this class."""
        from keras_sr import presets

        return presets.load_as(cls, preset)

    def save_to_preset(self, preset_dir):
        """Writes the preset directory `preset_dir` (made if missing; its three files replaced
        whole, each written to a temporary name first)."""
        import keras

        import keras_sr
        from keras_sr.atomic import atomic_path, write_bytes

        os.makedirs(preset_dir, exist_ok=True)
        config = keras.saving.serialize_keras_object(self)
        write_bytes(os.path.join(preset_dir, CONFIG_FILE),
                    json.dumps(config, indent=2).encode())
        with atomic_path(os.path.join(preset_dir, WEIGHTS_FILE)) as temporary:
            self.save_weights(temporary)
        metadata = {"keras_sr_version": keras_sr.__version__,
                    "keras_version": keras.__version__,
                    "class": config.get("registered_name"),
                    "parameter_count": self.count_params()}
        write_bytes(os.path.join(preset_dir, METADATA_FILE),
                    json.dumps(metadata, indent=2).encode())
