"""The ARKit-52 expressions written into the scene: one Action per expression on the head's armature (a pose library
the artist can browse: fake user, marked as a pose asset), and on request one shape key per expression on the mesh,
named exactly as ARKit names them (for iPhone face capture, VRChat, Unreal), baked from the armature-deformed mesh.

Everything that can refuse is checked before the first change (`check_rig_bones`, `check_shape_keys`), and a failure
while writing removes what was written, so the scene is never left half-changed. The user's own shape keys, vertex
groups, modifiers and UV maps stay as they are; shape keys named like ARKit's that this add-on did not make are
refused, ours (listed on the mesh) are replaced.
"""
from __future__ import annotations

import bpy
import numpy as np

from . import armature as armature_io
from .mesh import SceneInputError

OWNER_PROPERTY = "asm_expressions_of"  # on each expression Action: the head mesh's name
EXPRESSION_PROPERTY = "asm_expression"  # on each expression Action: its ARKit name
SHAPE_KEYS_PROPERTY = "asm_expression_keys"  # on the mesh object: the shape keys this add-on made (names)
BASIS_PROPERTY = "asm_expression_basis"  # on the mesh object: True when this add-on also made the Basis key
REST_TOLERANCE = 1e-4  # of the head unit: a bone's rest place further than this from the rig's has been edited


def action_name(mesh_obj, expression: str) -> str:
    return f"{mesh_obj.name} {expression}"


def check_rig_bones(arm, names, bind: np.ndarray, head_unit: float) -> None:
    """Refuse an armature whose bones were renamed, deleted or moved in Edit Mode since the rig was made (its poses
    would be keyed on the wrong bones or deform another way than fitted). names (J,), bind (J, 4, 4) the rig's rest
    matrices in the mesh's object space."""
    missing = [n for n in names if n not in arm.data.bones]
    if missing:
        raise SceneInputError(f"the armature {arm.name!r} has no bone {missing[0]!r}"
                              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: its bones were "
                              "renamed or deleted; rename them back or generate the rig again; nothing was changed")
    rest = armature_io.rest_matrices(arm, names)
    moved = np.abs(rest[:, :3, 3] - np.asarray(bind)[:, :3, 3]).max(1) > REST_TOLERANCE * head_unit
    turned = np.abs(rest[:, :3, :3] - np.asarray(bind)[:, :3, :3]).max((1, 2)) > 1e-3
    edited = [n for n, bad in zip(names, moved | turned) if bad]
    if edited:
        raise SceneInputError(f"bone {edited[0]!r} of {arm.name!r}"
                              f"{f' (and {len(edited) - 1} more)' if len(edited) > 1 else ''} was moved in Edit Mode "
                              "since the rig was made: press Re-bake Weights (it puts the bones back where the rig's "
                              "parameters place them) or generate the rig again; nothing was changed")


def arkit_keys_of_user(mesh_obj, expressions) -> list[str]:
    """The mesh's shape keys named like one of `expressions` that this add-on did not make."""
    keys = mesh_obj.data.shape_keys
    if keys is None:
        return []
    ours = set(mesh_obj.get(SHAPE_KEYS_PROPERTY, []))
    return [k.name for k in keys.key_blocks if k.name in expressions and k.name not in ours]


def check_shape_keys(mesh_obj, expressions) -> None:
    """Refuse to bake over shape keys the user made under ARKit's names."""
    clashes = arkit_keys_of_user(mesh_obj, expressions)
    if clashes:
        raise SceneInputError(f"mesh {mesh_obj.name!r} already has shape keys named like ARKit's "
                              f"({', '.join(clashes[:4])}{', ...' if len(clashes) > 4 else ''}) that ASM did not make: "
                              "rename or delete them to bake the expressions as shape keys (or make the Actions "
                              "only); nothing was changed")


def current_pose(arm, names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The armature's pose channels as the solver's local pose: log_scale, rotvec, translation, (J, 3) each."""
    log_scale, rotvec, translation = (np.zeros((len(names), 3)) for _ in range(3))
    for j, name in enumerate(names):
        location, rotation, scale = arm.pose.bones[name].matrix_basis.decompose()
        translation[j] = location
        axis, angle = rotation.to_axis_angle()
        rotvec[j] = np.asarray(axis) * angle
        log_scale[j] = np.log(np.maximum(np.abs(np.asarray(scale)), 1e-12))
    return log_scale, rotvec, translation


def _pose_channels(arm, names) -> dict[str, tuple]:
    """What set_pose overwrites, to put back: each bone's rotation mode and channels."""
    saved = {}
    for name in names:
        bone = arm.pose.bones[name]
        saved[name] = (bone.rotation_mode, tuple(bone.location), tuple(bone.rotation_quaternion),
                       tuple(bone.rotation_euler), tuple(bone.rotation_axis_angle), tuple(bone.scale))
    return saved


def _restore_channels(arm, saved: dict[str, tuple]) -> None:
    for name, (mode, location, quaternion, euler, axis_angle, scale) in saved.items():
        bone = arm.pose.bones[name]
        bone.rotation_mode = mode
        bone.location, bone.rotation_quaternion, bone.rotation_euler = location, quaternion, euler
        bone.rotation_axis_angle, bone.scale = axis_angle, scale


def remove_expression_actions(mesh_obj) -> None:
    """The expression Actions made earlier for `mesh_obj` (a new library replaces them)."""
    for action in [a for a in bpy.data.actions if a.get(OWNER_PROPERTY) == mesh_obj.name]:
        bpy.data.actions.remove(action)


def write_expression_actions(arm, mesh_obj, names, expressions, poses) -> list[str]:
    """One Action per expression ("<mesh> <expression>", fake user, marked as a pose asset where Blender can),
    keyed at the scene's first frame on every bone so that applying it gives the whole pose. poses: (log_scale,
    rotvec, translation), (E, J, 3) each. The armature's own animation and pose are left as they were."""
    had_animation = arm.animation_data is not None
    previous = arm.animation_data.action if had_animation else None
    saved = _pose_channels(arm, names)
    animation = arm.animation_data_create()
    frame = bpy.context.scene.frame_start
    made: list[str] = []
    try:
        for e, expression in enumerate(expressions):
            action = bpy.data.actions.new(action_name(mesh_obj, expression))
            made.append(action.name)
            action.use_fake_user = True  # kept in the saved file although no object uses it
            action[OWNER_PROPERTY] = mesh_obj.name
            action[EXPRESSION_PROPERTY] = expression
            animation.action = action
            armature_io.set_pose(arm, names, *(np.asarray(p[e], dtype=float) for p in poses))
            for name in names:
                pose_bone = arm.pose.bones[name]
                for path in ("location", "rotation_quaternion", "scale"):
                    pose_bone.keyframe_insert(path, frame=frame, group=name)
            _mark_pose_asset(action, mesh_obj, expression)
    except Exception:
        for name in made:
            if name in bpy.data.actions:
                bpy.data.actions.remove(bpy.data.actions[name])
        raise
    finally:
        if had_animation:
            animation.action = previous
        else:
            arm.animation_data_clear()
        _restore_channels(arm, saved)
    return made


def _mark_pose_asset(action, mesh_obj, expression: str) -> None:
    """Show the Action in the Asset Browser's pose library (where this Blender can mark assets headless)."""
    try:
        action.asset_mark()
    except (AttributeError, RuntimeError):
        return
    data = action.asset_data
    if data is None:
        return
    data.description = f"ARKit {expression} of {mesh_obj.name} (ASM Face Rig)"
    for tag in ("ARKit", "ASM"):
        if tag not in data.tags:
            data.tags.new(tag)


def armature_only_vertices(mesh_obj) -> np.ndarray:
    """(N, 3) the mesh deformed by its ASM armature alone: the user's other modifiers off and only the Basis shape
    showing, for the moment."""
    others = [m for m in mesh_obj.modifiers if m.name != armature_io.MODIFIER_NAME and m.show_viewport]
    only_key, active_key = mesh_obj.show_only_shape_key, mesh_obj.active_shape_key_index
    for modifier in others:
        modifier.show_viewport = False
    if mesh_obj.data.shape_keys is not None:
        mesh_obj.active_shape_key_index = 0
        mesh_obj.show_only_shape_key = True
    try:
        return armature_io.evaluated_vertices(mesh_obj)
    finally:
        for modifier in others:
            modifier.show_viewport = True
        mesh_obj.show_only_shape_key, mesh_obj.active_shape_key_index = only_key, active_key


def remove_expression_keys(mesh_obj) -> None:
    """The shape keys this add-on made on `mesh_obj` (and the Basis, when it made that too and no other key is
    left)."""
    keys = mesh_obj.data.shape_keys
    ours = set(mesh_obj.get(SHAPE_KEYS_PROPERTY, []))
    if keys is not None:
        for block in [k for k in keys.key_blocks if k.name in ours and k != keys.reference_key]:
            mesh_obj.shape_key_remove(block)
        keys = mesh_obj.data.shape_keys
        if keys is not None and mesh_obj.get(BASIS_PROPERTY) and len(keys.key_blocks) == 1:
            mesh_obj.shape_key_remove(keys.reference_key)
    for prop in (SHAPE_KEYS_PROPERTY, BASIS_PROPERTY):
        if prop in mesh_obj:
            del mesh_obj[prop]


def bake_expression_keys(arm, mesh_obj, names, expressions, poses, base) -> list[str]:
    """One shape key per expression, named as ARKit names it: the Basis plus the difference the expression's pose
    makes to the armature-deformed mesh against the base pose (the armature's pose before). The user's keys stay;
    ours from before are replaced (check_shape_keys first). poses: (log_scale, rotvec, translation) (E, J, 3) each,
    base: the same (J, 3) each."""
    saved = _pose_channels(arm, names)
    deformed = []
    try:
        armature_io.set_pose(arm, names, *base)
        rest = armature_only_vertices(mesh_obj)
        for e in range(len(expressions)):
            armature_io.set_pose(arm, names, *(np.asarray(p[e], dtype=float) for p in poses))
            deformed.append(armature_only_vertices(mesh_obj) - rest)
    finally:
        _restore_channels(arm, saved)
    remove_expression_keys(mesh_obj)
    made_basis = mesh_obj.data.shape_keys is None
    made: list[str] = []
    try:
        if made_basis:
            mesh_obj.shape_key_add(name="Basis", from_mix=False)
        basis = np.empty(len(mesh_obj.data.vertices) * 3, dtype=np.float32)
        mesh_obj.data.shape_keys.reference_key.data.foreach_get("co", basis)
        for expression, delta in zip(expressions, deformed):
            key = mesh_obj.shape_key_add(name=expression, from_mix=False)
            made.append(key.name)
            key.data.foreach_set("co", basis + delta.astype(np.float32).reshape(-1))
            key.value = 0.0
    except Exception:
        keys = mesh_obj.data.shape_keys
        for name in made:
            if keys is not None and name in keys.key_blocks:
                mesh_obj.shape_key_remove(keys.key_blocks[name])
        if made_basis and mesh_obj.data.shape_keys is not None and len(mesh_obj.data.shape_keys.key_blocks) == 1:
            mesh_obj.shape_key_remove(mesh_obj.data.shape_keys.reference_key)
        raise
    mesh_obj[SHAPE_KEYS_PROPERTY] = made
    mesh_obj[BASIS_PROPERTY] = made_basis
    mesh_obj.data.update()
    return made


def write_library(arm, mesh_obj, names, expressions, poses, base, shape_keys: bool) -> tuple[list[str], list[str]]:
    """The expression Actions (replacing this head's earlier ones) and, with `shape_keys`, the shape keys, all or
    nothing. Returns the Actions' and the keys' names."""
    if shape_keys:
        check_shape_keys(mesh_obj, expressions)
    earlier = [a for a in bpy.data.actions if a.get(OWNER_PROPERTY) == mesh_obj.name]
    for action in earlier:  # out of the way of the new names until the new ones are written
        action.name = f"{action.name} (replaced)"
    try:
        actions = write_expression_actions(arm, mesh_obj, names, expressions, poses)
        try:
            keys = bake_expression_keys(arm, mesh_obj, names, expressions, poses, base) if shape_keys else []
        except Exception:
            for name in actions:
                bpy.data.actions.remove(bpy.data.actions[name])
            raise
    except Exception:
        for action in earlier:
            action.name = action.name[: -len(" (replaced)")]
        raise
    for action in earlier:
        bpy.data.actions.remove(action)
    return actions, keys
