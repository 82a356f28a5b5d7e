"""Training: the LightningModule, checkpoint I/O and the `fit` entry point."""
