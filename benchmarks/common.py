"""What the benchmark scripts share: writing their rows as CSV, and leaving a bpy-module process safely."""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows as CSV, with every key any row has as a column (in first-seen order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    return path


def exit_after(main) -> None:
    """Run main() and leave with its exit code through os._exit: the bpy module can hang at interpreter exit.
    A SystemExit's message and any other exception's traceback are printed first."""
    try:
        code = main()
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
