"""Losses: VGG perceptual loss and standard / relativistic adversarial losses."""
