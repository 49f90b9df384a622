"""What every ASM operator shares: the one job that may run at a time, the head the sidebar acts on, and the modal
step runner that drives a flow (asm_blender/flows) on a timer while the solver works in its own process, so that
Blender stays responsive; Esc or the panel's Cancel stops it and the scene stays as it was. In background mode
(`blender -b`, the bpy module) the same operators run their flow to completion."""
from __future__ import annotations

import atexit
import shutil

import bpy

from .. import jobs
from ..flows.steps import StepRunner, run_to_completion
from ..scene_io import markers as markers_io
from ..scene_io.mesh import SceneInputError
from ..scene_io.rig import RIG_PROPERTY, existing_rig

# A step starts at the timer tick after the last one ended: at 0.1 s the fifteen steps of a Generate would wait
# about 0.7 s in all between them; a tick costs two file checks while the solver works.
TIMER_SECONDS = 0.02


class RunningJob:
    """The one ASM job (Generate, Check Photos, Fit) that may run at a time, for the panels and the Cancel button."""
    operator = None
    text = ""
    fraction = 0.0
    cancel_requested = False


@atexit.register
def _drop_running_job() -> None:
    """Blender quits while a job runs: the solver process is stopped first (it may be writing into the job's work
    folder), then the folder goes, as after a Cancel."""
    if RunningJob.operator is not None:
        jobs.stop_worker()
        RunningJob.operator._drop_workdir()


def job_running() -> bool:
    return RunningJob.operator is not None


def running_status() -> tuple[str, float]:
    return RunningJob.text, RunningJob.fraction


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


def active_rig_armature(context) -> bpy.types.Object | None:
    """The ASM armature the sidebar acts on (the active one, or the rig of the active head)."""
    obj = context.active_object
    if obj is not None and obj.type == 'ARMATURE' and RIG_PROPERTY in obj:
        return obj
    mesh_obj = target_mesh(context)
    return existing_rig(mesh_obj) if mesh_obj is not None else None


def redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


class StepsOperator:
    """A modal operator that runs a flow of steps (see StepRunner) with a timer; progress shows in the status bar
    and the panels, Esc or Cancel stops it and nothing changes. `execute` is the blocking form (background mode,
    scripts, the Redo panel). Subclasses give `_steps(context, workdir)`, `_finish(summary)` and `action`."""
    action = "the job"  # for the messages: "<action> cancelled"

    def _start(self, context) -> None:
        self.workdir = None
        self.workdir = jobs.make_folder(f"asm_{self.bl_idname.split('.')[-1]}_")
        self.steps = self._steps(context, self.workdir)

    def _drop_workdir(self) -> None:
        if getattr(self, "workdir", None) is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _cleanup(self, context) -> None:
        RunningJob.operator, RunningJob.text, RunningJob.fraction = None, "", 0.0
        RunningJob.cancel_requested = False
        if getattr(self, "timer", None) is not None:
            context.window_manager.event_timer_remove(self.timer)
            self.timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        self._drop_workdir()
        redraw(context)

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
        self.runner = StepRunner(self.steps)
        RunningJob.operator = self
        RunningJob.text, RunningJob.fraction = "starting", 0.0
        self.timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' or RunningJob.cancel_requested:
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
            RunningJob.text, RunningJob.fraction = status.text, status.fraction
            context.workspace.status_text_set(f"ASM: {status.text} ({status.fraction:.0%}) - Esc to cancel")
            redraw(context)
        return {'RUNNING_MODAL'}

    def _cancel(self, context):
        self.runner.cancel()
        self._cleanup(context)
        self.report({'INFO'}, f"{self.action} cancelled; nothing was changed")
        return {'CANCELLED'}


def poll_idle(cls, context) -> bool:
    if job_running():
        cls.poll_message_set("an ASM job is already running")
        return False
    return True


def poll_head(cls, context, missing: str = "select a head mesh") -> bpy.types.Object | None:
    """The head the sidebar acts on, when no job runs and there is one; else None, with the reason for the user."""
    if not poll_idle(cls, context):
        return None
    mesh_obj = target_mesh(context)
    if mesh_obj is None:
        cls.poll_message_set(missing)
    return mesh_obj


def poll_rigged_head(cls, context) -> bpy.types.Object | None:
    """poll_head for an action on a head's rig: None, with the reason, where the head has no ASM rig yet."""
    mesh_obj = poll_head(cls, context, "select a head mesh (or its ASM armature)")
    if mesh_obj is not None and existing_rig(mesh_obj) is None:
        cls.poll_message_set(f"{mesh_obj.name!r} has no ASM rig yet: press Generate Rig first")
        return None
    return mesh_obj


def poll_photo_list(cls, context) -> bool:
    mesh_obj = poll_head(cls, context)
    if mesh_obj is None:
        return False
    if len(mesh_obj.asm.photos) == 0:
        cls.poll_message_set("the photo list is empty; add photos first")
        return False
    return True
