"""asm.* operators. Generate Rig is modal: a timer advances its steps (asm_blender/generate_flow.py) while the
solver works in its own process, so Blender stays responsive; Esc or the panel's Cancel stops it and the scene
stays as it was. In background mode (`blender -b`, the bpy module) the same operator runs to completion."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import bpy

from . import jobs, rebake
from .generate_flow import GenerateOptions, Status, generate_steps, run_to_completion, solver_status
from .scene_io import markers as markers_io
from .scene_io.mesh import SceneInputError
from .scene_io.rig import RIG_PROPERTY, existing_rig, remove_rig

TIMER_SECONDS = 0.1


class _RunningJob:
    """The one Generate that may run at a time, for the panel and the Cancel button."""
    operator = None
    text = ""
    fraction = 0.0
    cancel_requested = False


def job_running() -> bool:
    return _RunningJob.operator is not None


def running_status() -> tuple[str, float]:
    return _RunningJob.text, _RunningJob.fraction


def target_mesh(context) -> bpy.types.Object | None:
    """The head mesh the sidebar acts on: the active mesh, or the head of an active ASM armature or markers."""
    obj = context.active_object
    if obj is None:
        return None
    if obj.type == 'ARMATURE' and "asm_mesh" in obj:
        return bpy.data.objects.get(obj["asm_mesh"])
    if markers_io.OWNER_PROPERTY in obj:
        return bpy.data.objects.get(obj[markers_io.OWNER_PROPERTY])
    return obj if obj.type == 'MESH' else None


def _options(mesh_obj: bpy.types.Object, detect_again: bool) -> GenerateOptions:
    settings = mesh_obj.asm
    return GenerateOptions(preset=settings.preset, influence_cap=int(settings.influence_cap),
                           gaussians_per_bone=settings.gaussians_per_bone, face_direction=settings.face_direction,
                           detect_again=detect_again, geometry_fallback=settings.geometry_fallback)


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


class ASM_OT_generate_rig(bpy.types.Operator):
    """Build an ASM face rig on the selected head mesh: find the face landmarks, make the chart, the armature
    and the Gaussian-mixture weights (replaces this mesh's previous ASM rig; your own data is kept)"""
    bl_idname = "asm.generate_rig"
    bl_label = "Generate Rig"
    bl_options = {'REGISTER', 'UNDO'}

    detect_again: bpy.props.BoolProperty(
        name="Detect Landmarks Again", description="Ignore the head's landmark markers and detect them anew",
        default=False)

    @classmethod
    def poll(cls, context):
        if job_running():
            cls.poll_message_set("an ASM job is already running")
            return False
        if target_mesh(context) is None:
            cls.poll_message_set("select a head mesh")
            return False
        return True

    def _start(self, context) -> bool:
        self.mesh_obj = target_mesh(context)
        self.workdir = Path(tempfile.mkdtemp(prefix="asm_generate_"))
        self.steps = generate_steps(self.mesh_obj, _options(self.mesh_obj, self.detect_again), self.workdir)
        return True

    def _finish(self, summary: dict) -> None:
        self.mesh_obj.asm.summary = json.dumps(summary)
        for note in summary["notes"]:
            self.report({'INFO'}, note)
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        self.report({'INFO'}, f"{summary['mesh']}: {summary['bones']} bones, {summary['landmarks']} landmarks, "
                              f"{summary['seconds']:.1f} s")

    def _cleanup(self, context) -> None:
        _RunningJob.operator, _RunningJob.text, _RunningJob.fraction = None, "", 0.0
        _RunningJob.cancel_requested = False
        if getattr(self, "timer", None) is not None:
            context.window_manager.event_timer_remove(self.timer)
            self.timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        shutil.rmtree(self.workdir, ignore_errors=True)
        _redraw(context)

    def execute(self, context):
        """Blocking form (background mode, scripts, Redo panel): all steps now."""
        self._start(context)
        try:
            summary = run_to_completion(self.steps)
        except (SceneInputError, jobs.JobError) as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._finish(summary)
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background or context.window_manager.windows[:] == []:
            return self.execute(context)
        self._start(context)
        self.step = None
        _RunningJob.operator = self
        _RunningJob.text, _RunningJob.fraction = "starting", 0.0
        self.timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' or _RunningJob.cancel_requested:
            return self._cancel(context)
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        try:
            if isinstance(self.step, jobs.Job) and not self.step.done():
                progress = self.step.progress()
                status = solver_status(progress) if progress is not None else None
            else:
                self.step = next(self.steps)
                status = self.step if isinstance(self.step, Status) else None
        except StopIteration as finished:
            self._finish(finished.value)
            self._cleanup(context)
            return {'FINISHED'}
        except (SceneInputError, jobs.JobError) as error:
            self.report({'ERROR'}, str(error))
            self._cleanup(context)
            return {'CANCELLED'}
        if status is not None:
            _RunningJob.text, _RunningJob.fraction = status.text, status.fraction
            context.workspace.status_text_set(f"ASM: {status.text} ({status.fraction:.0%}) - Esc to cancel")
            _redraw(context)
        return {'RUNNING_MODAL'}

    def _cancel(self, context):
        if isinstance(self.step, jobs.Job):
            self.step.cancel()
            self.step.kill()
        self.steps.close()
        self._cleanup(context)
        self.report({'INFO'}, "Generate Rig cancelled; nothing was changed")
        return {'CANCELLED'}


class ASM_OT_cancel_job(bpy.types.Operator):
    """Stop the running ASM job; the scene stays as it was"""
    bl_idname = "asm.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return job_running()

    def execute(self, context):
        _RunningJob.cancel_requested = True
        return {'FINISHED'}


class ASM_OT_remove_rig(bpy.types.Operator):
    """Remove the ASM rig from the head mesh: armature, Armature modifier, the rig's vertex groups and chart
    (your own vertex groups, modifiers, shape keys and UV maps are kept)"""
    bl_idname = "asm.remove_rig"
    bl_label = "Remove Rig"
    bl_options = {'REGISTER', 'UNDO'}

    keep_landmarks: bpy.props.BoolProperty(
        name="Keep Landmarks", description="Keep the landmark markers (and your edits to them) for the next Generate",
        default=True)

    @classmethod
    def poll(cls, context):
        mesh_obj = target_mesh(context)
        if mesh_obj is None or job_running():
            return False
        return existing_rig(mesh_obj) is not None or markers_io.find_markers(mesh_obj) is not None \
            or bool(mesh_obj.get("asm_vertex_groups"))

    def execute(self, context):
        mesh_obj = target_mesh(context)
        if mesh_obj.mode == 'EDIT':
            self.report({'ERROR'}, f"mesh {mesh_obj.name!r} is in Edit Mode; switch to Object Mode first")
            return {'CANCELLED'}
        if context.active_object is not None and context.active_object.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        removed = remove_rig(mesh_obj)
        if not self.keep_landmarks and markers_io.find_markers(mesh_obj) is not None:
            markers_io.remove_markers(mesh_obj)
            removed.append("landmarks")
        mesh_obj.asm.summary = ""
        if context.view_layer.objects.active is None and mesh_obj.name in context.view_layer.objects:
            context.view_layer.objects.active = mesh_obj
        self.report({'INFO'}, f"{mesh_obj.name}: removed {', '.join(removed) or 'nothing'}")
        return {'FINISHED'}


class ASM_OT_edit_landmarks(bpy.types.Operator):
    """Select the head's landmark markers and enter Edit Mode: move or delete wrong ones, then Regenerate"""
    bl_idname = "asm.edit_landmarks"
    bl_label = "Edit Landmarks"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        mesh_obj = target_mesh(context)
        return mesh_obj is not None and not job_running() and markers_io.find_markers(mesh_obj) is not None

    def execute(self, context):
        markers = markers_io.find_markers(target_mesh(context))
        if context.active_object is not None and context.active_object.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        for obj in context.selected_objects:
            obj.select_set(False)
        markers.hide_set(False)
        markers.select_set(True)
        context.view_layer.objects.active = markers
        bpy.ops.object.mode_set(mode='EDIT')
        return {'FINISHED'}


def active_rig_armature(context) -> bpy.types.Object | None:
    """The ASM armature the sidebar acts on (the active one, or the rig of the active head)."""
    obj = context.active_object
    if obj is not None and obj.type == 'ARMATURE' and RIG_PROPERTY in obj:
        return obj
    mesh_obj = target_mesh(context)
    return existing_rig(mesh_obj) if mesh_obj is not None else None


class ASM_OT_rebake_rig(bpy.types.Operator):
    """Re-bake the rig's weights and bone rest places from the bones' ASM parameters (binding points and
    Gaussians, under Bone in the sidebar)"""
    bl_idname = "asm.rebake_rig"
    bl_label = "Re-bake Weights"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return not job_running() and active_rig_armature(context) is not None

    def execute(self, context):
        arm = active_rig_armature(context)
        try:
            moved = rebake.rebake_now(arm)
        except (SceneInputError, jobs.JobError) as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{arm.name}: weights re-baked" + (f"; moved {', '.join(moved)}" if moved else ""))
        return {'FINISHED'}


CLASSES = (ASM_OT_generate_rig, ASM_OT_cancel_job, ASM_OT_remove_rig, ASM_OT_edit_landmarks, ASM_OT_rebake_rig)
