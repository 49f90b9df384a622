"""The ASM forward model (ASM.md §2-6): the rig's definition, binding in the UV chart, Gaussian-mixture weights,
kinematics, rigid parts and the chart itself. Imports `core` and `template`."""
from .asm_model import ASMModel, Pose
from .rig_definition import RigDefinition

__all__ = ["ASMModel", "Pose", "RigDefinition"]
