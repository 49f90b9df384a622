"""A rigged head exported for game engines with Blender's own exporters: glTF (.glb / .gltf) and FBX."""
from __future__ import annotations

from pathlib import Path

import addon_utils
import bpy

from .mesh import SceneInputError, blender_error


def select_only(objects) -> None:
    """Select exactly `objects` (shown, the first active), as the exporters' "selection only" reads it."""
    view_layer = bpy.context.view_layer
    for obj in view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.hide_set(False)
        obj.select_set(True)
    view_layer.objects.active = objects[0]


def export_glb(head, arm, path: Path, influences: int = 4) -> Path:
    """The rigged head alone (mesh and armature, skinned, at most `influences` (4 or 8) influences per vertex,
    weights normalised by the exporter) as glTF (.glb binary or .gltf with its .bin) that shows the fitted face: the
    armature's current pose (the fitted identity, when it was not baked) is the skeleton's pose in the file. The
    mesh's shape keys go out as morph targets under their own names (the mesh's extras.targetNames; ARKit's for the
    expression keys), without normals. No animations (the photos' and the expression Actions stay in the .blend)."""
    select_only((head, arm))
    path.parent.mkdir(parents=True, exist_ok=True)
    return _exported("glTF", path, lambda: bpy.ops.export_scene.gltf(
        filepath=str(path), export_format='GLB' if path.suffix.lower() == ".glb" else 'GLTF_SEPARATE',
        use_selection=True, export_skins=True, export_influence_nb=influences, export_all_influences=False,
        export_rest_position_armature=False, export_animations=False, export_morph=True,
        export_morph_normal=False, export_morph_tangent=False))


def export_fbx(head, arm, path: Path) -> Path:
    """The rigged head alone as FBX (mesh, armature and every vertex group; FBX keeps all influences, so the cap
    stays the rig's own), for engines that take FBX: no leaf bones, deform bones only, the armature's current pose
    as the rest of the file's scene. Units as Blender writes them (1 unit = 1 m)."""
    addon_utils.enable("io_scene_fbx", default_set=False)
    select_only((head, arm))
    path.parent.mkdir(parents=True, exist_ok=True)
    return _exported("FBX", path, lambda: bpy.ops.export_scene.fbx(
        filepath=str(path), use_selection=True, object_types={'ARMATURE', 'MESH'}, add_leaf_bones=False,
        use_armature_deform_only=True, bake_anim=False))


def _exported(kind: str, path: Path, export) -> Path:
    """Run `export()` (a Blender exporter operator writing `path`); its failure as one message naming the file (the
    exporters raise RuntimeError with their own traceback in the text)."""
    try:
        finished = export()
    except RuntimeError as error:
        raise SceneInputError(f"the {kind} export to {path} failed ({blender_error(error)}); check that its folder "
                              "is writable and has room") from None
    if finished != {'FINISHED'} or not path.is_file():
        raise SceneInputError(f"the {kind} export to {path} did not finish")
    return path
