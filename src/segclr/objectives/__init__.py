"""Training objectives: one small class per family of modes.

* :class:`SupervisedObjective`: ``supervised`` and ``upper_bound`` (Lsup only).
* :class:`SegCLRObjective`: ``segclr_uda`` and ``segclr_dg`` (joint Lsup + Lcon).
"""

from segclr.objectives.base import Objective, StepOutput, build_objective
from segclr.objectives.segclr import SegCLRObjective
from segclr.objectives.supervised import SupervisedObjective

__all__ = ["Objective", "SegCLRObjective", "StepOutput", "SupervisedObjective", "build_objective"]
