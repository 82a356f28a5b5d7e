"""Data: domains and splits, the device simulator, preprocessing, pairs, batched augmentation."""
