"""`info [FILE.blend]`: the ASM rigs in a .blend, listed."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..scene_io import armature as armature_io
from ..scene_io.markers import find_markers
from ..scene_io.rig import RIG_PROPERTY, existing_rig
from .common import PYTHON_PROG, addon_registered, open_blend, rigged_heads, stdout_to_stderr


def head_info(head) -> dict:
    """A rigged head's summary: its armature, bones, vertices, influences, landmarks and fit."""
    arm = existing_rig(head)
    record = json.loads(arm[RIG_PROPERTY])
    names = record["names"]
    weights = armature_io.read_weights(head, names)
    influences = (weights > 0).sum(axis=1)
    fit = json.loads(head.asm.fit_summary) if hasattr(head, "asm") and head.asm.fit_summary else {}
    markers = find_markers(head)
    return {
        "head": head.name, "armature": arm.name, "bones": len(arm.data.bones),
        "deforming_bones": int(np.sum(record["deform"])), "vertices": len(head.data.vertices),
        "vertex_groups": len(head.get(armature_io.GROUPS_PROPERTY, [])),
        "max_influences": int(influences.max()) if len(influences) else 0,
        "unweighted_vertices": int((influences == 0).sum()),
        "preset": head.asm.preset if hasattr(head, "asm") else None,
        "influence_cap": int(head.asm.influence_cap) if hasattr(head, "asm") else None,
        "landmark_markers": markers.name if markers is not None else None,
        "photos": [p.filepath for p in head.asm.photos] if hasattr(head, "asm") else [],
        "fitted": bool(fit), "fit_cameras": fit.get("cameras", []),
    }


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} info") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="List the ASM rigs in a .blend: each rigged head, its armature, bones, vertex groups, "
                               "influences per vertex, landmarks and photo fit.")
    parser.add_argument("blend", type=Path, nargs="?", help="the .blend (default: the file Blender has open)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    with stdout_to_stderr(), addon_registered():
        source = open_blend(args.blend)
        heads = [head_info(head) for head in rigged_heads()]
    summary = {"file": source, "rigs": heads}
    if args.json:
        print(json.dumps(summary, indent=1), flush=True)
        return 0
    # the listing is the command's result: on stdout, like --json
    if not heads:
        print(f"{source}: no ASM rig (generate one with the generate command)", flush=True)
    for item in heads:
        fitted = f"fitted to {len(item['fit_cameras'])} photos" if item["fitted"] else "not fitted"
        print(f"{item['head']}: armature {item['armature']!r}, {item['bones']} bones ({item['deforming_bones']} "
              f"deforming), {item['vertices']} vertices, at most {item['max_influences']} influences per vertex, "
              f"preset {item['preset']}, {fitted}", flush=True)
    return 0
