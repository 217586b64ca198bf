"""keras-sr networks: generators and discriminators of SRGAN and ESRGAN, and Real-ESRGAN's
compact generator and U-Net discriminator."""

from keras_sr.models.rrdbnet import RRDBNet
from keras_sr.models.srgan_discriminator import SRGANDiscriminator
from keras_sr.models.srresnet import SRResNet
from keras_sr.models.srvgg_compact import SRVGGNetCompact
from keras_sr.models.unet_discriminator_sn import UNetDiscriminatorSN
from keras_sr.models.vgg_style_discriminator import VGGStyleDiscriminator

__all__ = ["RRDBNet", "SRGANDiscriminator", "SRResNet", "SRVGGNetCompact",
           "UNetDiscriminatorSN", "VGGStyleDiscriminator"]
