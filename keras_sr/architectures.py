"""What each network supports, readable without TensorFlow: configurations are checked against
it before TensorFlow starts (training.config), and the networks take their values from here."""

# RRDBNet: Real-ESRGAN's x2 / x1 models pixel-unshuffle their input by this factor first, so one
# trunk at the x4 resolution serves every scale.
RRDBNET_UNSHUFFLE_FACTORS = {4: 1, 2: 2, 1: 4}
# SRResNet's sub-pixel stages: x2, x3, or x2 twice.
SRRESNET_UPSAMPLE_FACTORS = {2: (2,), 3: (3,), 4: (2, 2)}
GENERATOR_SCALES = {"rrdbnet": tuple(sorted(RRDBNET_UNSHUFFLE_FACTORS)),
                    "srresnet": tuple(sorted(SRRESNET_UPSAMPLE_FACTORS))}
# The side a discriminator's input must be a multiple of: SRGAN's strided convs halve it 4
# times, the VGG-style one 5 times, the U-Net's encoder 3 times.
DISCRIMINATOR_INPUT_MULTIPLES = {"srgan": 16, "vgg_style": 32, "unet_sn": 8}
