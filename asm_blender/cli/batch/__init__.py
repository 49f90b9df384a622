"""`asm batch MANIFEST`: many heads, each a job in its own process (issue 20).

    manifest.py   the manifest (TOML, JSON, CSV or a folder of heads) read and validated into Job specs
    state.py      the state file (JSON lines) that makes a batch resumable, and the outputs' checksums
    process.py    one job run as subprocesses of the existing commands, with its time limit, one retry after a
                  crash and its outputs moved into place; standard library only, so that Ray can ship it by value
    runner.py     a batch run: what runs, the default executor (N jobs at once, threads that only wait on
                  their processes), the state as jobs start and end, the clean stop
    command.py    the `batch` command's options
    ray_executor.py  the same jobs as Ray tasks (an optional dependency)
    report.py     the progress line and the JSON and Markdown summaries

Nothing here imports bpy or torch: the jobs' processes do.
"""
