"""Bottom layer: the segmentation network and the contrastive heads (no other segclr imports)."""

from segclr.models.fold import fold_batch_norm
from segclr.models.heads import ChannelProjectionHead, PoolProjectionHead, SimSiamPredictor, count_parameters
from segclr.models.unet import FeatureInfo, UNet

__all__ = ["ChannelProjectionHead", "FeatureInfo", "PoolProjectionHead", "SimSiamPredictor", "UNet", "count_parameters",
           "fold_batch_norm"]
