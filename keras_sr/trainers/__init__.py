"""Trainers: how the networks learn (keras.Model subclasses with a custom train_step)."""

from keras_sr.trainers.esrgan import ESRGAN
from keras_sr.trainers.psnr_trainer import PSNRTrainer
from keras_sr.trainers.pytorch_adam import PyTorchAdam
from keras_sr.trainers.srgan import SRGAN

__all__ = ["ESRGAN", "PSNRTrainer", "PyTorchAdam", "SRGAN"]
