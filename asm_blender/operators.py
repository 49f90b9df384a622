"""asm.* operators. Generate Rig, Check Photos and Fit to Photos are modal: a timer advances their steps
(asm_blender/generate_flow.py, fit_flow.py) while the solver works in its own process, so Blender stays responsive;
Esc or the panel's Cancel stops them and the scene stays as it was. In background mode (`blender -b`, the bpy module)
the same operators run to completion."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import bpy

from . import fit_flow, jobs, rebake
from .generate_flow import GenerateOptions, Status, generate_steps, run_to_completion, solver_status
from .scene_io import markers as markers_io
from .scene_io.mesh import SceneInputError
from .scene_io.rig import RIG_PROPERTY, existing_rig, remove_rig

# A step starts at the timer tick after the last one ended: at 0.1 s the fifteen steps of a Generate would wait
# about 0.7 s in all between them; a tick costs two file checks while the solver works.
TIMER_SECONDS = 0.02


class _RunningJob:
    """The one ASM job (Generate, Check Photos, Fit) that may run at a time, for the panels and the Cancel button."""
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


class StepRunner:
    """Advances a flow's steps (Status or started jobs.Job) one timer tick at a time, never waiting on the solver:
    what a modal operator does between redraws. `tick()` returns the new Status (None when nothing changed) and
    raises StopIteration carrying the flow's summary when it is done; `cancel()` stops the running job and closes
    the flow, which has changed nothing yet."""

    def __init__(self, steps, solver_range: tuple[float, float] = (0.5, 0.95)):
        self.steps, self.step, self.solver_range, self.fraction = steps, None, solver_range, 0.0

    def tick(self) -> Status | None:
        if isinstance(self.step, jobs.Job) and not self.step.done():
            progress = self.step.progress()
            if progress is None:
                return None
            status = solver_status(progress, *self.solver_range)
            return Status(status.text, max(status.fraction, self.fraction))  # a later job never goes backwards
        self.step = next(self.steps)
        if isinstance(self.step, Status):
            self.fraction = self.step.fraction
            return self.step
        return None

    def cancel(self) -> None:
        if isinstance(self.step, jobs.Job):
            self.step.cancel()
            self.step.kill()
        self.steps.close()


class _StepsOperator:
    """A modal operator that runs a flow of steps (see StepRunner) with a timer; progress shows in the status bar
    and the panels, Esc or Cancel stops it and nothing changes. `execute` is the blocking form (background mode,
    scripts, the Redo panel). Subclasses give `_steps(context, workdir)`, `_finish(summary)` and `action`."""
    action = "the job"  # for the messages: "<action> cancelled"
    solver_range = (0.5, 0.95)

    def _start(self, context) -> None:
        self.workdir = None
        self.workdir = jobs.make_folder(f"asm_{self.bl_idname.split('.')[-1]}_")
        self.steps = self._steps(context, self.workdir)

    def _drop_workdir(self) -> None:
        if getattr(self, "workdir", None) is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _cleanup(self, context) -> None:
        _RunningJob.operator, _RunningJob.text, _RunningJob.fraction = None, "", 0.0
        _RunningJob.cancel_requested = False
        if getattr(self, "timer", None) is not None:
            context.window_manager.event_timer_remove(self.timer)
            self.timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        self._drop_workdir()
        _redraw(context)

    def execute(self, context):
        """Blocking form (background mode, scripts, Redo panel): all steps now."""
        try:
            self._start(context)
            summary = run_to_completion(self.steps)
        except (SceneInputError, jobs.JobError) as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        finally:
            self._drop_workdir()
        self._finish(summary)
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background or context.window_manager.windows[:] == []:
            return self.execute(context)
        try:
            self._start(context)
        except (SceneInputError, jobs.JobError) as error:
            self._drop_workdir()
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        self.runner = StepRunner(self.steps, self.solver_range)
        _RunningJob.operator = self
        _RunningJob.text, _RunningJob.fraction = "starting", 0.0
        self.timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' or _RunningJob.cancel_requested:
            return self._cancel(context)
        if event.type == 'Z' and (event.ctrl or event.oskey):
            return {'RUNNING_MODAL'}  # no undo while the job runs: its last step writes into objects held here
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        try:
            status = self.runner.tick()
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
        self.runner.cancel()
        self._cleanup(context)
        self.report({'INFO'}, f"{self.action} cancelled; nothing was changed")
        return {'CANCELLED'}


def _poll_idle(cls, context) -> bool:
    if job_running():
        cls.poll_message_set("an ASM job is already running")
        return False
    return True


class ASM_OT_generate_rig(_StepsOperator, bpy.types.Operator):
    """Build an ASM face rig on the selected head mesh: find the face landmarks, make the chart, the armature
    and the Gaussian-mixture weights (replaces this mesh's previous ASM rig; your own data is kept)"""
    bl_idname = "asm.generate_rig"
    bl_label = "Generate Rig"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Generate Rig"

    detect_again: bpy.props.BoolProperty(
        name="Detect Landmarks Again", description="Ignore the head's landmark markers and detect them anew",
        default=False)

    @classmethod
    def poll(cls, context):
        if not _poll_idle(cls, context):
            return False
        if target_mesh(context) is None:
            cls.poll_message_set("select a head mesh")
            return False
        return True

    def _steps(self, context, workdir: Path):
        self.mesh_obj = target_mesh(context)
        return generate_steps(self.mesh_obj, _options(self.mesh_obj, self.detect_again), workdir)

    def _finish(self, summary: dict) -> None:
        self.mesh_obj.asm.summary = json.dumps(summary)
        for note in summary["notes"]:
            self.report({'INFO'}, note)
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        self.report({'INFO'}, f"{summary['mesh']}: {summary['bones']} bones, {summary['landmarks']} landmarks, "
                              f"{summary['seconds']:.1f} s")


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


# -- Photos ------------------------------------------------------------------------------------------------------

IMAGE_GLOB = ";".join(f"*{suffix}" for suffix in fit_flow.PHOTO_SUFFIXES)


def _poll_photo_list(cls, context) -> bool:
    if not _poll_idle(cls, context):
        return False
    mesh_obj = target_mesh(context)
    if mesh_obj is None:
        cls.poll_message_set("select a head mesh")
        return False
    if len(mesh_obj.asm.photos) == 0:
        cls.poll_message_set("the photo list is empty; add photos first")
        return False
    return True


class ASM_OT_add_photos(bpy.types.Operator):
    """Add photos of the person to the head's photo list: select one or several image files, or a folder to add
    all its images"""
    bl_idname = "asm.add_photos"
    bl_label = "Add Photos"
    bl_options = {'REGISTER', 'UNDO'}

    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: bpy.props.StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    filter_glob: bpy.props.StringProperty(default=IMAGE_GLOB, options={'HIDDEN'})
    filter_image: bpy.props.BoolProperty(default=True, options={'HIDDEN'})
    filter_folder: bpy.props.BoolProperty(default=True, options={'HIDDEN'})
    relative_path: bpy.props.BoolProperty(
        name="Relative Path", description="Store the photos' paths relative to the saved .blend file", default=True)

    @classmethod
    def poll(cls, context):
        if not _poll_idle(cls, context):
            return False
        if target_mesh(context) is None:
            cls.poll_message_set("select a head mesh")
            return False
        return True

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        mesh_obj = target_mesh(context)
        if not self.directory:
            self.report({'ERROR'}, "choose photo files or a folder of photos")
            return {'CANCELLED'}
        directory = Path(bpy.path.abspath(self.directory))
        names = [entry.name for entry in self.files if entry.name]
        if names:
            candidates = [directory / name for name in names]
        elif directory.is_dir():  # a folder chosen without files: all its images
            candidates = sorted(p for p in directory.iterdir() if p.is_file())
        else:
            self.report({'ERROR'}, f"folder not found: {directory}")
            return {'CANCELLED'}
        listed = {fit_flow.photo_path(photo).resolve() for photo in mesh_obj.asm.photos}
        added, skipped = [], []
        for path in candidates:
            if path.suffix.lower() not in fit_flow.PHOTO_SUFFIXES:
                if names:  # a folder's other files are skipped silently
                    skipped.append(f"{path.name} (not an image the fit reads)")
                continue
            if not path.is_file():
                skipped.append(f"{path.name} (not found)")
                continue
            if path.resolve() in listed:
                skipped.append(f"{path.name} (already in the list)")
                continue
            photo = mesh_obj.asm.photos.add()
            photo.filepath = self._stored_path(path)
            listed.add(path.resolve())
            added.append(path.name)
        if added:
            mesh_obj.asm.photo_index = len(mesh_obj.asm.photos) - 1
        if not added:
            self.report({'ERROR'}, f"no photos added: {', '.join(skipped)}" if skipped else
                        f"no photos ({', '.join(fit_flow.PHOTO_SUFFIXES)}) in {directory}")
            return {'CANCELLED'}
        if skipped:
            self.report({'WARNING'}, f"skipped {', '.join(skipped)}")
        self.report({'INFO'}, f"{mesh_obj.name}: added {len(added)} photo(s); {len(mesh_obj.asm.photos)} in the list")
        return {'FINISHED'}

    def _stored_path(self, path: Path) -> str:
        if self.relative_path and bpy.data.filepath:
            try:
                return bpy.path.relpath(str(path))
            except ValueError:  # another drive (Windows): keep it absolute
                pass
        return str(path)


class ASM_OT_remove_photo(bpy.types.Operator):
    """Remove the selected photo from the list (the file stays)"""
    bl_idname = "asm.remove_photo"
    bl_label = "Remove Photo"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _poll_photo_list(cls, context)

    def execute(self, context):
        settings = target_mesh(context).asm
        index = min(settings.photo_index, len(settings.photos) - 1)
        settings.photos.remove(index)
        settings.photo_index = max(min(index, len(settings.photos) - 1), 0)
        return {'FINISHED'}


class ASM_OT_clear_photos(bpy.types.Operator):
    """Remove every photo from the list (the files, cameras and last fit stay)"""
    bl_idname = "asm.clear_photos"
    bl_label = "Clear Photos"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _poll_photo_list(cls, context)

    def execute(self, context):
        settings = target_mesh(context).asm
        settings.photos.clear()
        settings.photo_index = 0
        return {'FINISHED'}


class ASM_OT_check_photos(_StepsOperator, bpy.types.Operator):
    """Find the face in each photo of the list and show what was found (a face, how many landmarks, the size, or
    what is wrong with the file), before fitting"""
    bl_idname = "asm.check_photos"
    bl_label = "Check Photos"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Check Photos"
    solver_range = (0.0, 0.0)  # the photos' own steps carry the fraction

    @classmethod
    def poll(cls, context):
        return _poll_photo_list(cls, context)

    def _steps(self, context, workdir: Path):
        return fit_flow.check_steps(target_mesh(context), workdir)

    def _finish(self, summary: dict) -> None:
        for problem in summary["problems"]:
            self.report({'WARNING'}, problem)
        self.report({'INFO'}, f"{summary['mesh']}: a face in {summary['faces_found']} of {summary['photos']} photo(s)")


class ASM_OT_fit_photos(_StepsOperator, bpy.types.Operator):
    """Fit the head's rig to the ticked photos: a camera per photo (the photo as its background), the fitted face
    as the armature's pose (or baked into the mesh) and each photo's expression as an Action"""
    bl_idname = "asm.fit_photos"
    bl_label = "Fit to Photos"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Fit to Photos"
    solver_range = (0.05, 0.9)

    @classmethod
    def poll(cls, context):
        if not _poll_idle(cls, context):
            return False
        mesh_obj = target_mesh(context)
        if mesh_obj is None:
            cls.poll_message_set("select a head mesh (or its ASM armature)")
            return False
        if existing_rig(mesh_obj) is None:
            cls.poll_message_set(f"{mesh_obj.name!r} has no ASM rig yet: press Generate Rig first")
            return False
        if not any(photo.enabled for photo in mesh_obj.asm.photos):
            cls.poll_message_set("add photos (Add Photos) and tick the ones to fit")
            return False
        return True

    def _steps(self, context, workdir: Path):
        mesh_obj = target_mesh(context)
        arm = fit_flow.rig_for_fit(mesh_obj)
        photos = fit_flow.enabled_photos(mesh_obj)
        settings = mesh_obj.asm
        return fit_flow.fit_steps(arm, photos, settings.fit_quality, settings.expressions, settings.bake_identity,
                                  workdir, match_texture=settings.match_texture, same_lens=settings.same_lens)

    def _finish(self, summary: dict) -> None:
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        errors = ", ".join(f"{e:.1f}" for e in summary["pixel_error_after"])
        self.report({'INFO'}, f"{summary['mesh']}: fitted to {len(summary['photos'])} photo(s), landmarks off by "
                              f"{errors} px; {summary['identity_note']}; {summary['seconds']:.0f} s")


CLASSES = (ASM_OT_generate_rig, ASM_OT_cancel_job, ASM_OT_remove_rig, ASM_OT_edit_landmarks, ASM_OT_rebake_rig,
           ASM_OT_add_photos, ASM_OT_remove_photo, ASM_OT_clear_photos, ASM_OT_check_photos, ASM_OT_fit_photos)
