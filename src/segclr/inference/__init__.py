"""Inference: model bundles applied to new B-scans."""

from segclr.inference.predict import Predictor, list_images, predict_folder

__all__ = ["Predictor", "list_images", "predict_folder"]
