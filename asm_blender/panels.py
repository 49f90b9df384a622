"""VIEW3D_PT_asm_* sidebar panels (tab "ASM")."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import bpy

from . import jobs
from .flows import rebake
from .jobs import dependencies
from .operators.base import active_rig_armature, job_running, running_status, target_mesh
from .scene_io import markers as markers_io
from .scene_io.photos import photo_path
from .scene_io.rig import existing_rig

MISSING_PACKAGES: list[str] = []  # the worker's packages found missing on register (see dependencies.py)
STATUS_ICONS = {"UNCHECKED": 'QUESTION', "OK": 'CHECKMARK', "WARNING": 'INFO', "NO_FACE": 'ERROR',
                "MISSING": 'LIBRARY_DATA_BROKEN', "ERROR": 'CANCEL'}


def rig_state(context) -> str:
    """One word for what the sidebar acts on, so every panel draws from the same state."""
    mesh_obj = target_mesh(context)
    if mesh_obj is None:
        return "no_mesh"
    return "rigged" if existing_rig(mesh_obj) is not None else "mesh"


def photo_state(context) -> str:
    """Where the photo fit stands: no_mesh, mesh (no rig: generate first), no_photos (none ticked), photos (ready to
    fit), fitting (a job runs) or fitted (a fit's summary is there)."""
    state = rig_state(context)
    if state != "rigged":
        return state
    if job_running():
        return "fitting"
    settings = target_mesh(context).asm
    if not any(photo.enabled for photo in settings.photos):
        return "no_photos"
    return "fitted" if settings.fit_summary else "photos"


def _draw_running(layout) -> None:
    """The running job's progress and its Cancel button."""
    text, fraction = running_status()
    box = layout.box()
    box.label(text=text, icon='SORTTIME')
    if hasattr(box, "progress"):  # Blender 4.0+
        box.progress(factor=fraction, type='BAR', text=f"{fraction:.0%}")
    box.operator("asm.cancel_job", icon='CANCEL')


class _SidebarTab:
    """Where every ASM panel lives: the 3D View's sidebar (N), tab "ASM"."""
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ASM"


_WARM_UP = {"asked": False}  # the solver process is started once per session when the ASM tab first shows


def _warm_up_solver():
    jobs.warm_worker()
    return None  # a one-shot timer


class VIEW3D_PT_asm_info(_SidebarTab, bpy.types.Panel):
    bl_label = "ASM Face Rig"
    bl_idname = "VIEW3D_PT_asm_info"

    def draw(self, context):
        layout = self.layout
        if not _WARM_UP["asked"] and not MISSING_PACKAGES:
            # The artist opened the ASM tab: start the solver now (from a timer: drawing must not start processes),
            # so that Generate does not wait for torch and the face models to load.
            _WARM_UP["asked"] = True
            bpy.app.timers.register(_warm_up_solver, first_interval=0.1)
        if MISSING_PACKAGES:
            box = layout.box()
            box.alert = True
            what, wheels, where = dependencies.missing_parts(MISSING_PACKAGES)
            # a label does not wrap: the sentences in lines that fit the sidebar
            first, *rest = textwrap.wrap(f"{what[:1].upper()}{what[1:]}" + (": missing" if wheels else ""), 48)
            box.label(text=first, icon='ERROR')
            for line in rest + [f"  {wheel}" for wheel in wheels] + textwrap.wrap(where[:1].upper() + where[1:], 48):
                box.label(text=line)
        state = rig_state(context)
        mesh_obj = target_mesh(context)
        if state == "no_mesh":
            layout.label(text="Select a head mesh to rig.", icon='INFO')
            return
        layout.label(text=mesh_obj.name, icon='MESH_DATA')
        settings = mesh_obj.asm
        column = layout.column()
        column.enabled = not job_running()
        column.prop(settings, "preset")
        column.prop(settings, "influence_cap")
        column.prop(settings, "gaussians_per_bone")
        column.prop(settings, "face_direction")
        column.prop(settings, "geometry_fallback")

        if job_running():
            _draw_running(layout)
            return
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("asm.generate_rig", text="Regenerate Rig" if state == "rigged" else "Generate Rig",
                     icon='FILE_REFRESH' if state == "rigged" else 'ARMATURE_DATA')
        row = layout.row(align=True)
        has_markers = markers_io.find_markers(mesh_obj) is not None
        row.operator("asm.edit_landmarks", icon='EDITMODE_HLT')
        if has_markers:
            row.operator("asm.generate_rig", text="Detect Again", icon='VIEWZOOM').detect_again = True
        layout.operator("asm.remove_rig", icon='X')
        _draw_summary(layout, settings.summary)


def _parsed(summary_json: str) -> dict | None:
    """A stored JSON summary, or None when there is none (or it was edited into something unreadable)."""
    if not summary_json:
        return None
    try:
        return json.loads(summary_json)
    except json.JSONDecodeError:
        return None


def _draw_summary(layout, summary_json: str) -> None:
    summary = _parsed(summary_json)
    if summary is None:
        return
    box = layout.box()
    box.label(text=f"{summary['bones']} bones, {summary['vertices']} vertices", icon='BONE_DATA')
    box.label(text=f"{summary['landmarks']} landmarks, face looks {summary['face_direction']}", icon='SHADERFX')
    box.label(text=f"chart: {summary['chart']}, {summary['influence_cap']} influences", icon='UV')
    for warning in summary.get("warnings", [])[:4]:
        box.label(text=warning, icon='ERROR')


class ASM_UL_photos(bpy.types.UIList):
    """The head's photos: tick to fit, the file's name, and what Check Photos found."""
    bl_idname = "ASM_UL_photos"

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        name = Path(item.filepath).name or "(no file)"
        status = item.status
        if status == "UNCHECKED" and item.filepath and not photo_path(item).is_file():
            status = "MISSING"  # seen without a check: the list must not look fine when the file is gone
        row.label(text=name, icon='IMAGE_DATA')
        if status == "OK":
            detail = f"{item.landmark_count} pts"
        elif status == "MISSING":
            detail = "not found"
        else:
            detail = {"UNCHECKED": "", "WARNING": "note", "NO_FACE": "no face", "ERROR": "unreadable"}[status]
        row.label(text=detail, icon=STATUS_ICONS[status])


class VIEW3D_PT_asm_photos(_SidebarTab, bpy.types.Panel):
    """Fit the rig to photos of a person: the photo list, its check, the fit's settings and result."""
    bl_label = "ASM Photos"
    bl_idname = "VIEW3D_PT_asm_photos"

    @classmethod
    def poll(cls, context):
        return target_mesh(context) is not None

    def draw(self, context):
        layout = self.layout
        state = photo_state(context)
        settings = target_mesh(context).asm
        running = job_running()
        if state == "mesh":
            layout.label(text="Generate the rig first (above);", icon='INFO')
            layout.label(text="then add photos and fit it to them.")
        row = layout.row()
        row.template_list("ASM_UL_photos", "", settings, "photos", settings, "photo_index", rows=3)
        column = row.column(align=True)
        column.enabled = not running
        column.operator("asm.add_photos", text="", icon='ADD')
        column.operator("asm.remove_photo", text="", icon='REMOVE')
        column.separator()
        column.operator("asm.clear_photos", text="", icon='X')
        if len(settings.photos) == 0:
            row = layout.row()
            row.scale_y = 1.4
            row.operator("asm.add_photos", icon='FILE_IMAGE')
            return
        if 0 <= settings.photo_index < len(settings.photos):
            photo = settings.photos[settings.photo_index]
            box = layout.box()
            box.enabled = not running
            box.prop(photo, "filepath", text="")
            if photo.status != "UNCHECKED":
                size = f", {photo.image_size[0]}x{photo.image_size[1]} px" if photo.image_size[0] else ""
                box.label(text=photo.message + (size if photo.status == "WARNING" else ""),
                          icon=STATUS_ICONS[photo.status])
        layout.operator("asm.check_photos", icon='VIEWZOOM')
        column = layout.column()
        column.enabled = not running
        column.prop(settings, "fit_quality")
        column.prop(settings, "expressions")
        column.prop(settings, "same_lens")
        column.prop(settings, "match_texture")
        column.prop(settings, "bake_identity")
        if running:
            _draw_running(layout)
            return
        count = sum(photo.enabled for photo in settings.photos)
        row = layout.row()
        row.scale_y = 1.4
        row.operator("asm.fit_photos", text="Fit Again" if state == "fitted" else
                     f"Fit to {count} Photo{'s' if count != 1 else ''}", icon='CAMERA_DATA')
        _draw_fit_summary(layout, settings.fit_summary)


def _draw_fit_summary(layout, summary_json: str) -> None:
    summary = _parsed(summary_json)
    if summary is None:
        return
    box = layout.box()
    box.label(text=f"Last fit: {len(summary['photos'])} photo(s), {summary['seconds']:.0f} s", icon='CHECKMARK')
    for path, error in zip(summary["photos"], summary["pixel_error_after"]):
        box.label(text=f"{Path(path).name}: landmarks off by {error:.1f} px", icon='IMAGE_DATA')
    if summary.get("final_loss") is not None:
        box.label(text=f"final loss {summary['final_loss']:.4g}", icon='GRAPH')
    box.label(text="identity baked into the mesh" if summary.get("identity") == "baked"
              else "identity kept as the armature's pose", icon='ARMATURE_DATA')
    if summary.get("actions"):
        box.label(text=f"{len(summary['actions'])} expression Actions ({summary['actions'][0]}, ...)",
                  icon='ACTION')
    for warning in summary.get("warnings", [])[:4]:
        box.label(text=warning, icon='ERROR')


class VIEW3D_PT_asm_expressions(_SidebarTab, bpy.types.Panel):
    """The ARKit-52 pose library: Actions (and shape keys) fitted on the head's rig."""
    bl_label = "ASM Expressions"
    bl_idname = "VIEW3D_PT_asm_expressions"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        return target_mesh(context) is not None

    def draw(self, context):
        layout = self.layout
        mesh_obj = target_mesh(context)
        if rig_state(context) != "rigged":
            layout.label(text="Generate the rig first (above);", icon='INFO')
            layout.label(text="then make its ARKit expressions.")
            return
        layout.prop(mesh_obj.asm, "expression_shape_keys")
        if job_running():
            _draw_running(layout)
            return
        row = layout.row()
        row.scale_y = 1.4
        row.operator("asm.make_expressions", icon='ACTION').shape_keys = mesh_obj.asm.expression_shape_keys
        summary = _parsed(mesh_obj.get("asm_expressions_summary", ""))
        if summary is not None:
            box = layout.box()
            box.label(text=f"{len(summary['actions'])} Actions ({summary['actions'][0]}, ...)"
                      if summary["actions"] else "no Actions", icon='CHECKMARK')
            if summary.get("shape_keys"):
                box.label(text=f"{len(summary['shape_keys'])} shape keys", icon='SHAPEKEY_DATA')
            if summary.get("median_residual") is not None:
                box.label(text=f"median residual {summary['median_residual']:.0%}, {summary['seconds']:.0f} s",
                          icon='GRAPH')


class VIEW3D_PT_asm_bone(_SidebarTab, bpy.types.Panel):
    """The active bone's ASM parameters: editing them re-bakes its weights."""
    bl_label = "ASM Bone"
    bl_idname = "VIEW3D_PT_asm_bone"

    @classmethod
    def poll(cls, context):
        arm = active_rig_armature(context)
        return arm is not None and arm.data.bones.active is not None

    def draw(self, context):
        layout = self.layout
        arm = active_rig_armature(context)
        bone = arm.pose.bones.get(arm.data.bones.active.name)
        if bone is None:
            return
        layout.label(text=bone.name, icon='BONE_DATA')
        layout.prop(bone.asm, "binding")
        if len(bone.asm.gaussians) == 0:
            layout.label(text="No weights of its own (moves its children)", icon='INFO')
        for k, gaussian in enumerate(bone.asm.gaussians):
            box = layout.box()
            box.label(text=f"Gaussian {k + 1}")
            box.prop(gaussian, "weight")
            box.prop(gaussian, "size")
            box.prop(gaussian, "angle")
            box.prop(gaussian, "offset")
        layout.operator("asm.rebake_rig", icon='FILE_REFRESH')
        if rebake.last_message:
            layout.label(text=rebake.last_message, icon='INFO')


CLASSES = (ASM_UL_photos, VIEW3D_PT_asm_info, VIEW3D_PT_asm_photos, VIEW3D_PT_asm_expressions,
           VIEW3D_PT_asm_bone)  # drawn in this order
