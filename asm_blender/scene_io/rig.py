"""Apply a generated rig (the solver's result arrays) to a mesh object, all or nothing."""
from __future__ import annotations

import json

import bpy
import numpy as np

from . import armature as armature_io
from .mesh import SceneInputError

CHART_ATTRIBUTE = "ASM_UV"  # per-vertex ASM chart; the user's UV maps are never touched
RIG_PROPERTY = "asm_rig"  # JSON of the rig's parameters, on the armature object
RIG_FORMAT = "asm-rig/1"


def apply_rig(mesh_obj: bpy.types.Object, result: dict, name: str | None = None) -> bpy.types.Object:
    """Create armature, vertex groups, Armature modifier and chart attribute for `result` on `mesh_obj`.

    Checks everything that can fail before the first change; if writing still fails, what was created
    is removed again, so the scene is never left half-changed.
    """
    names = [str(n) for n in result["names"]]
    if len(result["chart_uv"]) != len(mesh_obj.data.vertices):
        raise SceneInputError(f"the rig was made for {len(result['chart_uv'])} vertices but mesh {mesh_obj.name!r} "
                              f"has {len(mesh_obj.data.vertices)}; regenerate the rig")
    armature_io.check_group_names(mesh_obj, names)
    previous = existing_rig(mesh_obj)
    arm = armature_io.build_armature(mesh_obj, names, result["parents"], result["bind"], result["length"], name)
    try:
        armature_io.write_weights(mesh_obj, names, result["weight_bones"], result["weight_values"], result["deform"])
        armature_io.add_armature_modifier(mesh_obj, arm)
        attributes = mesh_obj.data.attributes
        if CHART_ATTRIBUTE in attributes:
            attributes.remove(attributes[CHART_ATTRIBUTE])
        chart = attributes.new(CHART_ATTRIBUTE, 'FLOAT2', 'POINT')
        chart.data.foreach_set("vector", np.asarray(result["chart_uv"], dtype=np.float32).reshape(-1))
        arm[RIG_PROPERTY] = json.dumps(rig_parameters(result))
        arm["asm_mesh"] = mesh_obj.name
    except Exception:
        _remove_armature(arm)
        raise
    if previous is not None:  # the new rig replaces the old one cleanly
        old_name = previous.name
        _remove_armature(previous)
        arm.name = arm.data.name = name or old_name
    return arm


def existing_rig(mesh_obj: bpy.types.Object) -> bpy.types.Object | None:
    """The ASM armature currently deforming `mesh_obj`, if any."""
    modifier = mesh_obj.modifiers.get(armature_io.MODIFIER_NAME)
    if modifier is not None and modifier.type == 'ARMATURE' and modifier.object is not None \
            and RIG_PROPERTY in modifier.object:
        return modifier.object
    return None


def remove_rig(mesh_obj: bpy.types.Object) -> list[str]:
    """Remove what Generate added to `mesh_obj`: its ASM armature, the Armature modifier, the vertex groups the
    rig owns and the chart attribute. The user's own groups, modifiers, shape keys and UVs stay.
    Returns what was removed, for the report."""
    removed = []
    arm = existing_rig(mesh_obj)
    modifier = mesh_obj.modifiers.get(armature_io.MODIFIER_NAME)
    if modifier is not None and modifier.type == 'ARMATURE':
        mesh_obj.modifiers.remove(modifier)
        removed.append("modifier")
    owned = list(mesh_obj.get(armature_io.GROUPS_PROPERTY, []))
    for name in owned:
        group = mesh_obj.vertex_groups.get(name)
        if group is not None:
            mesh_obj.vertex_groups.remove(group)
    if owned:
        removed.append(f"{len(owned)} vertex groups")
    if armature_io.GROUPS_PROPERTY in mesh_obj:
        del mesh_obj[armature_io.GROUPS_PROPERTY]
    attributes = mesh_obj.data.attributes
    if CHART_ATTRIBUTE in attributes:
        attributes.remove(attributes[CHART_ATTRIBUTE])
    if arm is not None:
        removed.insert(0, f"armature {arm.name!r}")
        _remove_armature(arm)
    return removed


def _remove_armature(arm: bpy.types.Object) -> None:
    data = arm.data
    bpy.data.objects.remove(arm)
    if data.users == 0:
        bpy.data.armatures.remove(data)


def rig_parameters(result: dict) -> dict:
    """The per-bone ASM parameters that define the rig (so it can be re-baked or refitted later)."""
    keys = ("parents", "zeta", "bind_triangle", "bind_offset", "rest_rotation", "length", "free", "deform",
            "mixture_logits", "mixture_offsets", "mixture_covariance", "head_unit")
    record = {key: np.asarray(result[key]).tolist() for key in keys}
    record["names"] = [str(n) for n in result["names"]]
    record["format"] = RIG_FORMAT
    return record
