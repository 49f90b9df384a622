"""Apply a generated rig (the solver's result arrays) to a mesh object, all or nothing."""
from __future__ import annotations

import json
import math

import bpy
import numpy as np
from mathutils import Matrix

from . import armature as armature_io
from .mesh import SceneInputError
from .objects import remove_object

CHART_ATTRIBUTE = "ASM_UV"  # per-vertex ASM chart; the user's UV maps are never touched
RIG_PROPERTY = "asm_rig"  # JSON of the rig's parameters, on the armature object
RIG_FORMAT = "asm-rig/1"
SETTINGS_PROPERTY = "asm_generate_settings"  # on the armature: how the rig was made (JSON)
filling = False  # True while the pose bones' ASM properties are written from a rig (edits then re-bake nothing)
MOVED = 1e-5  # change of a rest matrix (relative to the rig's size) that counts as a move: Blender stores float32


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
        store_rig_record(arm, result)
        arm["asm_mesh"] = mesh_obj.name
    except Exception:
        remove_object(arm)
        raise
    if previous is not None:  # the new rig replaces the old one cleanly
        old_name = previous.name
        remove_object(previous)
        arm.name = arm.data.name = name or old_name
    return arm


def check_rig_format(arm: bpy.types.Object, mesh_obj: bpy.types.Object) -> None:
    """Refuse a rig that another ASM version made (its record reads differently)."""
    recorded = json.loads(arm[RIG_PROPERTY]).get("format") if isinstance(arm[RIG_PROPERTY], str) else None
    if recorded != RIG_FORMAT:
        raise SceneInputError(f"the rig {arm.name!r} on {mesh_obj.name!r} was made by another ASM version "
                              f"(format {recorded!r}, this one reads {RIG_FORMAT!r}); press Remove Rig, "
                              "then Generate")


def store_generate_settings(arm: bpy.types.Object, settings: dict) -> None:
    """How the rig was made (its Generate options), for re-bakes and fits."""
    arm[SETTINGS_PROPERTY] = json.dumps(settings)


def mesh_of(arm: bpy.types.Object) -> bpy.types.Object:
    """The head mesh an ASM armature was made for."""
    mesh_obj = bpy.data.objects.get(arm.get("asm_mesh", ""))
    if mesh_obj is None or mesh_obj.type != 'MESH':
        raise SceneInputError(f"the rig {arm.name!r} has lost its mesh ({arm.get('asm_mesh')!r}); generate it again")
    return mesh_obj


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
        remove_object(arm)
    return removed


def apply_rebake(arm: bpy.types.Object, result: dict) -> list[str]:
    """Write a re-bake's weights and rest matrices into the scene; returns the bones whose rest place moved."""
    mesh_obj = mesh_of(arm)
    names = [str(n) for n in result["names"]]
    old = armature_io.rest_matrices(arm, names)
    size = max(float(np.ptp(old[:, :3, 3], axis=0).max()), 1e-12)
    moved = [n for j, n in enumerate(names) if np.abs(old[j] - result["bind"][j]).max() > MOVED * size]
    if moved:
        set_rest_matrices(arm, names, result["bind"], [names.index(n) for n in moved])
    armature_io.write_weights(mesh_obj, names, result["weight_bones"], result["weight_values"], result["deform"])
    store_rig_record(arm, result)
    mesh_obj.data.update()
    return moved


def fill_bone_properties(arm: bpy.types.Object, record: dict) -> None:
    """Write each bone's binding point and Gaussians from a rig record onto its pose bone."""
    global filling
    covariance = np.asarray(record["mixture_covariance"], dtype=float)
    values, vectors = np.linalg.eigh(covariance)  # ascending: the last is the major axis
    logits = np.asarray(record["mixture_logits"], dtype=float)
    shares = np.exp(logits - logits.max(-1, keepdims=True))
    shares /= shares.sum(-1, keepdims=True)
    offsets = np.asarray(record["mixture_offsets"], dtype=float)
    has_gaussians = record.get("has_gaussians", [True] * len(record["names"]))
    filling = True
    try:
        for j, name in enumerate(record["names"]):
            settings = arm.pose.bones[name].asm
            settings.binding = record["zeta"][j]
            settings.gaussians.clear()
            if not has_gaussians[j]:
                continue
            for k in range(covariance.shape[1]):
                gaussian = settings.gaussians.add()
                gaussian.weight = float(max(shares[j, k], 1e-4))
                gaussian.size = np.sqrt(np.maximum(values[j, k, ::-1], 1e-12)).tolist()
                major = vectors[j, k, :, 1]
                gaussian.angle = math.atan2(major[1], major[0])
                gaussian.offset = offsets[j, k].tolist()
    finally:
        filling = False


def edited_parameters(arm: bpy.types.Object, record: dict) -> dict[str, np.ndarray]:
    """The editable rig arrays (asm_protocol.keys.RIG_PARAMETER_KEYS) as the pose bones hold them now."""
    names = record["names"]
    zeta = np.array([arm.pose.bones[n].asm.binding[:] for n in names], dtype=float)
    # The properties hold float32: a binding point left as it was keeps the record's exact value (rounded, a
    # point on a triangle's edge could fall into its neighbour, on another layer of the surface).
    stored = np.asarray(record["zeta"], dtype=float)
    unchanged = (zeta == stored.astype(np.float32)).all(1)
    zeta[unchanged] = stored[unchanged]
    logits = np.asarray(record["mixture_logits"], dtype=float).copy()
    offsets = np.asarray(record["mixture_offsets"], dtype=float).copy()
    covariance = np.asarray(record["mixture_covariance"], dtype=float).copy()
    for j, name in enumerate(names):
        gaussians = arm.pose.bones[name].asm.gaussians
        if len(gaussians) == 0:
            continue
        if len(gaussians) != logits.shape[1]:
            raise SceneInputError(f"bone {name!r} of {arm.name!r} has {len(gaussians)} Gaussians but the rig was made "
                                  f"with {logits.shape[1]}; change Gaussians per Bone and generate again")
        for k, gaussian in enumerate(gaussians):
            logits[j, k] = math.log(gaussian.weight)
            offsets[j, k] = gaussian.offset[:]
            cos, sin = math.cos(gaussian.angle), math.sin(gaussian.angle)
            axes = np.array([[cos, -sin], [sin, cos]])
            covariance[j, k] = axes @ np.diag(np.square(gaussian.size[:])) @ axes.T
    return {"zeta": zeta, "bind_triangle": np.asarray(record["bind_triangle"]),
            "bind_offset": np.asarray(record["bind_offset"], dtype=float), "mixture_logits": logits,
            "mixture_offsets": offsets, "mixture_covariance": covariance}


def set_rest_matrices(arm: bpy.types.Object, names, bind: np.ndarray, bones) -> None:
    """Give the bones `bones` (indices into names) the rest matrices bind (J, 4, 4), keeping their lengths."""
    armature_io._ensure_object_mode()
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    hidden = arm.hide_get()
    arm.hide_set(False)
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        for j in bones:
            bone = arm.data.edit_bones[names[j]]
            length = bone.length
            bone.matrix = Matrix([list(row) for row in np.asarray(bind[j], dtype=np.float64)])
            bone.length = length
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')
        view_layer.objects.active = previous_active
        arm.hide_set(hidden)


def store_rig_record(arm: bpy.types.Object, result: dict) -> None:
    """Keep the rig's parameters on the armature (JSON) and, with the add-on registered, on its pose bones, where
    they can be edited (clamped binding points come back as the solver left them)."""
    record = rig_parameters(result)
    arm[RIG_PROPERTY] = json.dumps(record)
    if hasattr(bpy.types.PoseBone, "asm"):
        fill_bone_properties(arm, record)


def rig_parameters(result: dict) -> dict:
    """The per-bone ASM parameters that define the rig (so it can be re-baked or refitted later)."""
    keys = ("parents", "zeta", "bind_triangle", "bind_offset", "rest_rotation", "length", "free", "deform",
            "mixture_logits", "mixture_offsets", "mixture_covariance", "head_unit", "chart", "remainder_bone",
            "has_gaussians")
    record = {key: np.asarray(result[key]).tolist() for key in keys}
    record["names"] = [str(n) for n in result["names"]]
    record["format"] = RIG_FORMAT
    return record
