"""The solver worker's tasks and the job folder protocol (asm_blender/jobs writes a job, solver/worker runs it).

    job.json          {"task": one of TASKS, "settings": {...}}       written by the client
    inputs.npz        input arrays (see `keys`)                        written by the client
    cancel            created by the client to ask for a stop
    progress.jsonl    one {"stage", "fraction"[, "loss"]} per line     appended by the worker (at most 2 a second)
    result.npz        result arrays (+ "warnings" as JSON text)        written by the worker on success, atomically
    error.json        {"kind": one of ERROR_KINDS, "message"[, "traceback"]}   written by the worker on failure
    finished          written by a serving worker when it is done with the job (either way)

A serving worker (`python -m solver.worker --serve QUEUE`) takes tickets `QUEUE/NNNNNN.job` (a job folder's path,
written as `.partial` and renamed) in name order and stops when `QUEUE/stop` appears.
"""
from __future__ import annotations

GENERATE = "generate"  # place the rig on a mesh from its landmarks
REBAKE = "rebake"  # the rig as it stands in the scene (edited parameters) baked again
GEOMETRY_LANDMARKS = "geometry_landmarks"  # landmarks from the mesh's shape when no face is detected
DETECT = "detect"  # face landmarks in image files
FIT_PHOTOS = "fit_photos"  # the rig and one camera per photo fitted to photos
FIT_SCAN = "fit_scan"  # the rig fitted to a 3D scan
COMPARE_TO_SCAN = "compare_to_scan"  # surfaces measured against a scan
ENVIRONMENT = "environment"  # where the worker's packages come from
WARM_UP = "warm_up"  # import torch and the detector ahead of the first real job
EXPRESSIONS = "expressions"  # the ARKit-52 expressions as bone poses of a rig as it stands
TASKS = (GENERATE, REBAKE, GEOMETRY_LANDMARKS, DETECT, FIT_PHOTOS, FIT_SCAN, COMPARE_TO_SCAN, ENVIRONMENT, WARM_UP,
         EXPRESSIONS)
PHOTO_TASKS = (DETECT, FIT_PHOTOS)  # the tasks that need the face detector's packages

JOB_FILE = "job.json"
INPUTS_FILE = "inputs.npz"
CANCEL_FILE = "cancel"
PROGRESS_FILE = "progress.jsonl"
RESULT_FILE = "result.npz"
PARTIAL_RESULT_FILE = "result.partial.npz"
ERROR_FILE = "error.json"
FINISHED_FILE = "finished"
STOP_FILE = "stop"  # in a serving worker's queue folder
TICKET_SUFFIX, PARTIAL_TICKET_SUFFIX = ".job", ".partial"
WORKER_LOG = "worker.log"  # in the queue folder: the serving worker's stdout and stderr

INPUT_ERROR, CANCELLED, INTERNAL_ERROR = "input", "cancelled", "internal"  # error.json "kind"
ERROR_KINDS = (INPUT_ERROR, CANCELLED, INTERNAL_ERROR)
EXIT_CODES = {INTERNAL_ERROR: 1, INPUT_ERROR: 2, CANCELLED: 3}  # a one-job worker's exit code per error kind
