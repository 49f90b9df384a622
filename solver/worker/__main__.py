import sys
from pathlib import Path

from .serve import run_job, serve

if len(sys.argv) == 3 and sys.argv[1] == "--serve":
    sys.exit(serve(Path(sys.argv[2])))
if len(sys.argv) != 2:
    print("usage: python -m solver.worker JOB_DIR   or   python -m solver.worker --serve QUEUE_DIR", file=sys.stderr)
    sys.exit(2)
sys.exit(run_job(Path(sys.argv[1])))
