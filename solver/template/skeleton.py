"""The skeleton template: one data file (template/skeleton.json), loaded, validated and expanded here.

The loader is strict on purpose: a typo in a template silently produces a broken rig much later, so
every problem raises a TemplateError that names the bone and the field.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import TemplateError
from . import TEMPLATE_DIR
from .canonical import canonical_face

DEFAULT_TEMPLATE = TEMPLATE_DIR / "skeleton.json"
LEARNED_MIXTURES = TEMPLATE_DIR / "skeleton_mixtures.json"  # benchmarks/template_mixtures.py writes it
PARAMETER_GROUPS = ("scale", "rotation", "translation")
BONE_FIELDS = {
    "name", "parent", "anchor", "reach", "offset", "y_axis", "z_axis", "length", "free", "presets",
    "deform", "remainder", "mirror", "sigma", "angle", "game_sigma_scale", "standard_sigma_scale", "pivot",
    "turns_about",
}
PIVOT_FIELDS = {"landmarks", "offset"}
MAX_DEPTH_BELOW_HEAD = 3
OPENING_SIDES = ("upper", "lower")


@dataclass(frozen=True)
class Opening:
    """One opening of the face (the mouth, an eye) for one preset: per side ("upper", "lower") the seed landmark
    groups and the (J,) side of every bone: +1 upper, -1 lower, 0 neither."""

    name: str
    seeds: dict[str, tuple[tuple[int, ...], ...]]
    bone_side: np.ndarray


@dataclass(frozen=True)
class Pivot:
    """A bone whose head (the point it turns about: the jaw's hinge) is placed in 3D from the mesh rather than
    offset from its binding point: the mean of `landmarks` on the mesh (a set that is its own mirror image, so the
    mean lies on the face's middle) plus `offset` (iod, canonical frame). Its binding point, where its Gaussians
    sit, stays at its anchor (solver/rig/transfer.py)."""

    bone: int
    landmarks: np.ndarray  # (P,) int64 surface landmark ids, closed under the left-right mirror
    offset: np.ndarray  # (3,) iod


@dataclass(frozen=True)
class Skeleton:
    """A template resolved for one preset, in the canonical face frame. J bones, parents before children."""

    preset: str
    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int64, -1 for the root
    anchor_landmarks: tuple[np.ndarray, ...]  # per bone: landmark ids
    anchor_weights: tuple[np.ndarray, ...]  # per bone: weights summing to 1
    anchor_uv: np.ndarray  # (J, 2) canonical UV of the binding point
    reach: np.ndarray  # (J, 3) iod; for bones beyond the face: surface target = anchor landmarks + reach
    has_reach: np.ndarray  # (J,) bool
    offset: np.ndarray  # (J, 3) iod, bind offset delta from the surface point to the bone's head
    rest_rotation: np.ndarray  # (J, 3, 3) columns = bone X, Y, Z axes in the canonical frame
    length: np.ndarray  # (J,) iod
    free: np.ndarray  # (J, 3) bool for (scale, rotation, translation)
    deform: np.ndarray  # (J,) bool: has a vertex group
    has_gaussians: np.ndarray  # (J,) bool
    sigma: np.ndarray  # (J, 2) canonical UV units (major, minor before rotation by angle)
    angle: np.ndarray  # (J,) radians
    remainder_bone: int  # the bone that takes the weight no Gaussian claims (the head)
    iod_canonical: float  # cm between the canonical outer eye corners
    turns_about: np.ndarray  # (J,) int64: the bone whose head is this bone's head (the lids: their eye's), -1 none
    openings: tuple[Opening, ...] = ()  # the mouth and the eyes (solver/rig/openings.py)
    mixtures: "LearnedMixtures | None" = None  # Gaussians learned from artist-made expressions (full preset)
    pivots: tuple[Pivot, ...] = ()  # bones whose head is placed from the mesh (the jaw's hinge)

    @property
    def bone_count(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise TemplateError(f"no bone named {name!r} in the {self.preset!r} preset") from None


def mirrored_name(name: str) -> str:
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


def _vector(bone: str, field: str, value, size: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TemplateError(f"bone {bone!r}: field {field!r} must be a list of {size} numbers, got {value!r}") from None
    if array.shape != (size,) or not np.isfinite(array).all():
        raise TemplateError(f"bone {bone!r}: field {field!r} must be a list of {size} finite numbers, got {value!r}")
    return array


def _rest_rotation(bone: str, y_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    """Orthonormal frame with Y along y_axis and Z as close to z_axis as possible (Gram-Schmidt)."""
    if np.linalg.norm(y_axis) < 1e-9:
        raise TemplateError(f"bone {bone!r}: y_axis is zero")
    y = y_axis / np.linalg.norm(y_axis)
    z = z_axis - y * (z_axis @ y)
    if np.linalg.norm(z) < 1e-6:
        raise TemplateError(f"bone {bone!r}: z_axis is parallel to y_axis, so the roll is undefined")
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1)


def _pivot(name: str, bone: dict, index: int, mirror: np.ndarray, landmark_count: int) -> Pivot:
    """A bone's "pivot" field, validated: {"landmarks": [ids closed under the mirror], "offset": [x, y, z]}."""
    pivot = bone["pivot"]
    if not isinstance(pivot, dict) or set(pivot) != PIVOT_FIELDS:
        raise TemplateError(f"bone {name!r}: 'pivot' needs exactly the fields {sorted(PIVOT_FIELDS)} (landmarks whose "
                            f"mean on the mesh, plus the offset in iod, is the bone's head), got {pivot!r:.80}")
    for field in ("offset", "reach", "mirror"):
        if bone.get(field):
            raise TemplateError(f"bone {name!r}: a bone with a 'pivot' has its head placed by it; drop {field!r}")
    landmarks = pivot["landmarks"]
    if not isinstance(landmarks, list) or not landmarks or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < landmark_count for i in landmarks):
        raise TemplateError(f"bone {name!r}: pivot 'landmarks' must be a non-empty list of landmark ids below "
                            f"{landmark_count}, got {landmarks!r}")
    unpaired = sorted(set(int(mirror[i]) for i in landmarks) - set(landmarks))
    if unpaired:
        raise TemplateError(f"bone {name!r}: pivot 'landmarks' must hold each landmark's mirror twin too, so that "
                            f"their mean lies on the face's middle; add {unpaired}")
    return Pivot(index, np.asarray(landmarks, dtype=np.int64), _vector(name, "pivot.offset", pivot["offset"], 3))


def _turns_about(name: str, by_name: dict[str, dict], kept_index: dict[str, int]) -> int:
    """A bone's "turns_about" field, validated: the name of a bone of the same preset, itself placed on its own,
    whose head this bone shares (an eyelid turns about its eye's centre: solver/rig/transfer.py)."""
    bone, target = by_name[name], by_name[name]["turns_about"]
    for field in ("offset", "reach", "pivot"):
        if field in bone:
            raise TemplateError(f"bone {name!r}: a bone with 'turns_about' has its head at that bone's; drop {field!r}")
    if not isinstance(target, str) or target not in by_name:
        raise TemplateError(f"bone {name!r}: 'turns_about' must name a bone of the template, got {target!r}")
    if "turns_about" in by_name[target]:
        raise TemplateError(f"bone {name!r}: it turns about {target!r}, which itself turns about another bone; "
                            f"name that one instead")
    if target not in kept_index:
        raise TemplateError(f"bone {name!r}: it turns about {target!r}, which this preset leaves out")
    return kept_index[target]


def _expand_mirrors(bones: list[dict], mirror_map: np.ndarray) -> list[dict]:
    flip = np.array([-1.0, 1.0, 1.0])
    expanded = []
    for bone in bones:
        expanded.append(bone)
        if not bone.get("mirror"):
            continue
        name = bone.get("name", "?")
        if not str(name).endswith(".L"):
            raise TemplateError(f"bone {name!r}: mirror=true needs a name ending in '.L' (the subject's left side)")
        twin = dict(bone, name=mirrored_name(name), mirror=False)
        for field in ("parent", "turns_about"):
            if isinstance(bone.get(field), str):
                twin[field] = mirrored_name(bone[field])
        anchor = dict(bone.get("anchor", {}))
        landmarks = anchor.get("landmarks", [])
        if all(isinstance(i, int) and 0 <= i < len(mirror_map) for i in landmarks):
            anchor["landmarks"] = [int(mirror_map[i]) for i in landmarks]
        twin["anchor"] = anchor
        for field in ("reach", "offset", "y_axis", "z_axis"):
            if field in bone:
                twin[field] = list(np.asarray(bone[field], float) * flip)
        if "angle" in bone:
            twin["angle"] = -float(bone["angle"])
        twin["_mirror_of"] = name
        expanded.append(twin)
    return expanded


def _topological_order(names: list[str], parent_of: dict[str, str | None]) -> list[str]:
    order, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise TemplateError("bone hierarchy has a cycle: " + " -> ".join(cycle))
        state[name] = "visiting"
        parent = parent_of[name]
        if parent is not None:
            visit(parent, path + [name])
        state[name] = "done"
        order.append(name)

    for name in names:
        visit(name, [])
    return order


def _openings(data: dict, known: set[str], kept: list[str], landmark_count: int) -> tuple[Opening, ...]:
    """The template's "openings" resolved for the kept bones; unknown bones, sides and landmarks are refused."""
    openings = []
    for name, opening in data.items():
        if name == "about":
            continue
        if not isinstance(opening, dict) or set(opening) != set(OPENING_SIDES):
            raise TemplateError(f"opening {name!r}: needs exactly the sides {list(OPENING_SIDES)}")
        bone_side = np.zeros(len(kept))
        seeds = {}
        for side, sign in zip(OPENING_SIDES, (1.0, -1.0)):
            groups = opening[side].get("seeds", [])
            if not groups or not all(isinstance(g, list) and g and all(isinstance(i, int) and 0 <= i < landmark_count
                                                                         for i in g) for g in groups):
                raise TemplateError(f"opening {name!r} {side}: 'seeds' must be non-empty lists of landmark ids "
                                    f"below {landmark_count}")
            seeds[side] = tuple(tuple(g) for g in groups)
            for bone in opening[side].get("bones", []):
                if bone not in known:
                    raise TemplateError(f"opening {name!r} {side}: no bone named {bone!r}")
                if bone in kept:
                    bone_side[kept.index(bone)] = sign
        openings.append(Opening(name, seeds, bone_side))
    return tuple(openings)


@dataclass(frozen=True)
class LearnedMixtures:
    """Per-bone Gaussian mixtures in canonical UV, relative to each bone's anchor: K components per bone.
    Bones without one (has (J,) False) keep the ellipse that `sigma` and `angle` describe."""

    has: np.ndarray  # (J,) bool
    logits: np.ndarray  # (J, K)
    offsets: np.ndarray  # (J, K, 2)
    covariance: np.ndarray  # (J, K, 2, 2)

    @property
    def gaussians_per_bone(self) -> int:
        return self.logits.shape[1]


def load_skeleton(preset: str = "full", path: Path | str | None = None,
                  mixtures: Path | str | None = LEARNED_MIXTURES) -> Skeleton:
    """Load and validate the template file and resolve it for `preset` ("full", "standard" or "game"). The full
    preset also takes the learned Gaussians of `mixtures` where that file exists (None: the ellipses alone)."""
    path = Path(path) if path is not None else DEFAULT_TEMPLATE
    data = _read_json(path, "skeleton template")
    skeleton = skeleton_from_dict(data, preset, source=str(path))
    if preset == "full" and mixtures is not None and Path(mixtures).is_file():
        skeleton = dataclasses.replace(skeleton, mixtures=mixtures_from_dict(
            _read_json(Path(mixtures), "learned mixtures"), skeleton, source=str(mixtures)))
    return skeleton


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TemplateError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as error:
        raise TemplateError(f"{what} {path} is not valid JSON: {error}") from None


def mirrored_component(offset: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A component of a .L bone as its .R twin's: the canonical UV mirrors u about the face's middle line.
    offset (..., 2), covariance (..., 2, 2)."""
    flip = np.array([-1.0, 1.0])
    return offset * flip, covariance * np.outer(flip, flip)


def mixtures_from_dict(data: dict, skeleton: Skeleton, source: str = "mixtures") -> LearnedMixtures:
    """{"gaussians_per_bone": K, "bones": {name: {"weights": [K], "offsets": [[du, dv]] * K,
    "covariances": [[suu, suv, svv]] * K}}}; a .L bone's entry also sets its .R twin, mirrored."""
    k = data.get("gaussians_per_bone")
    bones = data.get("bones")
    if not isinstance(k, int) or k < 1 or not isinstance(bones, dict):
        raise TemplateError(f"{source}: needs 'gaussians_per_bone' (int) and 'bones' (object)")
    count = skeleton.bone_count
    has = np.zeros(count, dtype=bool)
    logits, offsets = np.zeros((count, k)), np.zeros((count, k, 2))
    covariance = np.tile(np.eye(2), (count, k, 1, 1))
    for name, entry in bones.items():
        if name not in skeleton.names:
            raise TemplateError(f"{source}: bone {name!r} is not in the template")
        try:
            weights = np.asarray(entry["weights"], dtype=float).reshape(k)
            means = np.asarray(entry["offsets"], dtype=float).reshape(k, 2)
            suu, suv, svv = np.asarray(entry["covariances"], dtype=float).reshape(k, 3).T
        except (KeyError, ValueError, TypeError) as error:
            raise TemplateError(f"{source}: bone {name!r}: expected {k} weights, offsets [du, dv] and covariances "
                                f"[suu, suv, svv] ({error})") from None
        matrices = np.stack([np.stack([suu, suv], -1), np.stack([suv, svv], -1)], -2)
        if (weights <= 0).any() or (np.linalg.eigvalsh(matrices) <= 0).any():
            raise TemplateError(f"{source}: bone {name!r}: weights and covariances must be positive")
        twins = [(name, means, matrices)]
        if name.endswith(".L"):
            twins.append((mirrored_name(name), *mirrored_component(means, matrices)))
        for bone, bone_means, bone_matrices in twins:
            j = skeleton.index(bone)
            has[j], logits[j], offsets[j], covariance[j] = True, np.log(weights / weights.sum()), bone_means, bone_matrices
    return LearnedMixtures(has=has & skeleton.has_gaussians, logits=logits, offsets=offsets, covariance=covariance)


def skeleton_from_dict(data: dict, preset: str = "full", source: str = "template") -> Skeleton:
    face = canonical_face()
    if data.get("format") != "asm-skeleton":
        raise TemplateError(f"{source}: 'format' must be 'asm-skeleton'")
    presets = data.get("presets", {})
    if preset not in presets:
        raise TemplateError(f"{source}: unknown preset {preset!r}; the template defines {sorted(presets)}")
    defaults = data.get("defaults", {})
    raw_bones = data.get("bones")
    if not isinstance(raw_bones, list) or not raw_bones:
        raise TemplateError(f"{source}: 'bones' must be a non-empty list")
    for bone in raw_bones:
        if not isinstance(bone, dict) or not isinstance(bone.get("name"), str) or not bone["name"]:
            raise TemplateError(f"{source}: every bone needs a non-empty string 'name' (got {bone!r:.80})")
        unknown = set(bone) - BONE_FIELDS
        if unknown:
            raise TemplateError(f"bone {bone['name']!r}: unknown field(s) {sorted(unknown)}; allowed: {sorted(BONE_FIELDS)}")
    bones = _expand_mirrors(raw_bones, face.mirror)

    by_name: dict[str, dict] = {}
    for bone in bones:
        if bone["name"] in by_name:
            raise TemplateError(f"duplicate bone name {bone['name']!r}")
        by_name[bone["name"]] = bone
    parent_of = {}
    for name, bone in by_name.items():
        parent = bone.get("parent")
        if parent is not None and parent not in by_name:
            raise TemplateError(f"bone {name!r}: parent {parent!r} does not exist")
        parent_of[name] = parent
    order = _topological_order(list(by_name), parent_of)  # first, so that a cycle is named as such
    roots = [n for n, p in parent_of.items() if p is None]
    if len(roots) != 1:
        raise TemplateError(f"the template needs exactly one root bone (parent null), found {roots}")
    remainders = [n for n in order if by_name[n].get("remainder")]
    if len(remainders) != 1:
        raise TemplateError(f"exactly one bone must have remainder=true (the head), found {remainders}")
    depth = {}
    for name in order:
        depth[name] = 0 if parent_of[name] is None else depth[parent_of[name]] + 1
    head = remainders[0]
    for name in order:
        ancestor, steps = name, 0
        while ancestor is not None and ancestor != head:
            ancestor, steps = parent_of[ancestor], steps + 1
        if ancestor == head and steps > MAX_DEPTH_BELOW_HEAD:
            raise TemplateError(f"bone {name!r} is {steps} levels below {head!r}; at most {MAX_DEPTH_BELOW_HEAD} are allowed")

    # The preset keeps a subset; each kept bone hangs from its nearest kept ancestor.
    def in_preset(bone: dict) -> bool:
        chosen = bone.get("presets", defaults.get("presets", ["full"]))
        for p in chosen:
            if p not in presets:
                raise TemplateError(f"bone {bone['name']!r}: unknown preset {p!r} in 'presets'")
        return preset == "full" or preset in chosen

    kept = [n for n in order if in_preset(by_name[n])]
    if roots[0] not in kept or head not in kept:
        raise TemplateError(f"preset {preset!r} must keep the root {roots[0]!r} and the head {head!r}")
    kept_index = {n: i for i, n in enumerate(kept)}

    iod_landmarks = data.get("canonical", {}).get("iod_landmarks", [33, 263])
    iod = float(np.linalg.norm(face.vertices[iod_landmarks[0]] - face.vertices[iod_landmarks[1]]))

    columns: dict[str, list] = {k: [] for k in (
        "parents", "landmarks", "weights", "anchor_uv", "reach", "has_reach", "offset", "rotation", "length",
        "free", "deform", "gauss", "sigma", "angle")}
    pivots = []
    turns_about = np.full(len(kept), -1, dtype=np.int64)
    for name in kept:
        bone = {**defaults, **by_name[name]}
        parent = parent_of[name]
        while parent is not None and parent not in kept_index:
            parent = parent_of[parent]
        columns["parents"].append(-1 if parent is None else kept_index[parent])
        anchor = bone.get("anchor")
        if not isinstance(anchor, dict) or not anchor.get("landmarks"):
            raise TemplateError(f"bone {name!r}: 'anchor' needs a non-empty 'landmarks' list")
        landmarks = anchor["landmarks"]
        for landmark in landmarks:
            if not isinstance(landmark, int) or not 0 <= landmark < face.surface_count:
                raise TemplateError(
                    f"bone {name!r}: unknown landmark index {landmark!r}; anchors use the {face.surface_count} "
                    f"surface landmarks 0..{face.surface_count - 1} of the MediaPipe face mesh")
        weights = _vector(name, "anchor.weights", anchor.get("weights", [1.0] * len(landmarks)), len(landmarks))
        if (weights < 0).any() or weights.sum() <= 0:
            raise TemplateError(f"bone {name!r}: anchor weights must be non-negative with a positive sum")
        weights = weights / weights.sum()
        landmarks = np.asarray(landmarks, dtype=np.int64)
        anchor_x = float(weights @ face.vertices[landmarks, 0])
        if name.endswith(".L") and anchor_x <= 0 or name.endswith(".R") and anchor_x >= 0:
            side = "left (x > 0)" if name.endswith(".L") else "right (x < 0)"
            raise TemplateError(f"bone {name!r}: its anchor lies at x = {anchor_x:.2f} cm, not on the subject's {side}")
        columns["landmarks"].append(landmarks)
        columns["weights"].append(weights)
        columns["anchor_uv"].append(weights @ face.uv[landmarks])
        columns["has_reach"].append("reach" in by_name[name])
        columns["reach"].append(_vector(name, "reach", bone.get("reach", [0, 0, 0]), 3))
        if "pivot" in bone:
            pivots.append(_pivot(name, by_name[name], len(columns["offset"]), face.mirror, face.surface_count))
        if "turns_about" in bone:
            turns_about[len(columns["offset"])] = _turns_about(name, by_name, kept_index)
        placed_elsewhere = "pivot" in bone or "turns_about" in bone
        columns["offset"].append(_vector(name, "offset", [0, 0, 0] if placed_elsewhere else bone["offset"], 3))
        columns["rotation"].append(_rest_rotation(name, _vector(name, "y_axis", bone["y_axis"], 3),
                                                  _vector(name, "z_axis", bone["z_axis"], 3)))
        length = float(bone["length"])
        if not length > 0:
            raise TemplateError(f"bone {name!r}: length must be positive, got {length}")
        columns["length"].append(length)
        free = bone["free"]
        unknown = set(free) - set(PARAMETER_GROUPS)
        if unknown:
            raise TemplateError(f"bone {name!r}: unknown parameter group(s) {sorted(unknown)} in 'free'; use {PARAMETER_GROUPS}")
        columns["free"].append([g in free for g in PARAMETER_GROUPS])
        deform = bool(bone.get("deform", True))
        has_gaussians = deform and not bone.get("remainder", False)
        if has_gaussians and "sigma" not in bone:
            raise TemplateError(f"bone {name!r}: a deforming bone needs 'sigma' (its Gaussian size in canonical UV)")
        sigma = _vector(name, "sigma", bone.get("sigma", [0.05, 0.05]), 2)
        if (sigma <= 0).any():
            raise TemplateError(f"bone {name!r}: sigma must be positive, got {list(sigma)}")
        if preset != "full":  # a smaller preset widens the Gaussians of bones whose neighbours it leaves out
            sigma = sigma * float(bone.get(f"{preset}_sigma_scale", 1.0))
        columns["deform"].append(deform)
        columns["gauss"].append(has_gaussians)
        columns["sigma"].append(sigma)
        columns["angle"].append(np.radians(float(bone.get("angle", 0.0))))

    return Skeleton(
        preset=preset,
        names=tuple(kept),
        parents=np.asarray(columns["parents"], dtype=np.int64),
        anchor_landmarks=tuple(columns["landmarks"]),
        anchor_weights=tuple(columns["weights"]),
        anchor_uv=np.asarray(columns["anchor_uv"]),
        reach=np.asarray(columns["reach"]),
        has_reach=np.asarray(columns["has_reach"], dtype=bool),
        offset=np.asarray(columns["offset"]),
        rest_rotation=np.asarray(columns["rotation"]),
        length=np.asarray(columns["length"]),
        free=np.asarray(columns["free"], dtype=bool),
        deform=np.asarray(columns["deform"], dtype=bool),
        has_gaussians=np.asarray(columns["gauss"], dtype=bool),
        sigma=np.asarray(columns["sigma"]),
        angle=np.asarray(columns["angle"]),
        remainder_bone=kept_index[head],
        iod_canonical=iod,
        openings=_openings(data.get("openings", {}), set(by_name), kept, face.surface_count),
        pivots=tuple(pivots),
        turns_about=turns_about,
    )
