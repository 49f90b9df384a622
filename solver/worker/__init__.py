"""The solver worker: runs jobs from job folders in its own process (the protocol: asm_protocol.tasks).

    python -m solver.worker JOB_DIR             one job
    python -m solver.worker --serve QUEUE_DIR   every job queued for a long-lived server (see serve.serve)

`tasks` is the table of tasks (name -> function); it is the only module that imports the rig, fit and vision
layers together.
"""
