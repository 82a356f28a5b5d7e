"""Evaluation: Dice with the nnU-Net rule, summaries, tables and pictures."""

from segclr.evaluation.metrics import DiceAccumulator, confusion, dice, dice_from_counts

__all__ = ["DiceAccumulator", "confusion", "dice", "dice_from_counts"]
