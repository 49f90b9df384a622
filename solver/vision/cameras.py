"""Pinhole cameras for uncalibrated photos (ASM.md §8): one per photo, principal point at the image centre,
focal length unknown, and their start from the detected landmarks by PnP with a focal search.

Convention: OpenCV's (camera x right, y down, z forward; pixels from the top-left corner). A point p of the
rig's object space lands at  K (R p + t),  K = [[f, 0, w/2], [0, f, h/2], [0, 0, 1]].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import ASMInputError
from ..core.rotations import rotvec_to_matrix

FOCAL_SEARCH = tuple(np.geomspace(0.6, 6.0, 25))  # focal lengths tried, as multiples of the image's larger side
# (0.6: a wide phone camera; 6: a long portrait lens)
MIN_PNP_POINTS = 6


@dataclass
class Cameras:
    """V cameras as tensors (the fitting group "cameras" moves rotvec, translation and log_focal)."""

    rotvec: torch.Tensor  # (V, 3) object space -> camera
    translation: torch.Tensor  # (V, 3) in the rig's units
    log_focal: torch.Tensor  # (V,) focal length in pixels, as a log
    image_size: torch.Tensor  # (V, 2) width, height in pixels (fixed)

    @classmethod
    def from_arrays(cls, rotvec, translation, focal, image_size, dtype=torch.float64, device="cpu") -> "Cameras":
        as_tensor = lambda a: torch.tensor(np.asarray(a, dtype=float), dtype=dtype, device=device)  # noqa: E731
        return cls(as_tensor(rotvec).reshape(-1, 3), as_tensor(translation).reshape(-1, 3),
                   torch.log(as_tensor(focal).reshape(-1)), as_tensor(image_size).reshape(-1, 2))

    def tensors(self) -> list[torch.Tensor]:
        return [self.rotvec, self.translation, self.log_focal]

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) object-space points, or (V, P, 3) each photo's own -> (V, P, 2) pixels, and (V, P) depth along
        each camera's axis."""
        rotvec, translation, log_focal, size = (t.to(points.dtype) for t in (self.rotvec, self.translation,
                                                                              self.log_focal, self.image_size))
        in_camera = (points.unsqueeze(0) if points.ndim == 2 else points) @ rotvec_to_matrix(rotvec).transpose(-1, -2) + translation[:, None]
        depth = in_camera[..., 2]
        pixels = torch.exp(log_focal)[:, None, None] * in_camera[..., :2] / depth.clamp_min(1e-9).unsqueeze(-1) \
            + size[:, None] / 2
        return pixels, depth

    def centres(self) -> torch.Tensor:
        """(V, 3) each camera's position in object space."""
        rotation = rotvec_to_matrix(self.rotvec)
        return -(rotation.transpose(-1, -2) @ self.translation.unsqueeze(-1)).squeeze(-1)

    def one(self, v: int) -> "Cameras":
        """Camera `v` alone (sharing its tensors)."""
        return Cameras(self.rotvec[v:v + 1], self.translation[v:v + 1], self.log_focal[v:v + 1],
                       self.image_size[v:v + 1])

    def as_arrays(self) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"camera_rotvec": self.rotvec.cpu().numpy(), "camera_translation": self.translation.cpu().numpy(),
                    "camera_focal": torch.exp(self.log_focal).cpu().numpy(),
                    "camera_image_size": self.image_size.cpu().numpy()}


def solve_camera(points3d: np.ndarray, pixels: np.ndarray, image_size, focal_search=FOCAL_SEARCH) -> dict:
    """One photo's camera from landmark correspondences: PnP (OpenCV, SQPnP refined by Levenberg-Marquardt) at
    each focal length of the search, keeping the one with the smallest reprojection error.

    points3d (L, 3) object space, pixels (L, 2); returns rotvec (3,), translation (3,), focal, rms (pixels)."""
    import cv2  # the worker's library; the solver's other modules do not need it

    points3d = np.asarray(points3d, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    usable = np.isfinite(points3d).all(1) & np.isfinite(pixels).all(1)
    if usable.sum() < MIN_PNP_POINTS:
        raise ASMInputError(f"only {int(usable.sum())} landmarks to place the camera; at least {MIN_PNP_POINTS} "
                            "are needed")
    points3d, pixels = points3d[usable], pixels[usable]
    width, height = (float(s) for s in image_size)
    best = None
    for factor in focal_search:
        focal = factor * max(width, height)
        matrix = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
        found, rotvec, translation = cv2.solvePnP(points3d, pixels, matrix, None, flags=cv2.SOLVEPNP_SQPNP)
        if not found:
            continue
        rotvec, translation = cv2.solvePnPRefineLM(points3d, pixels, matrix, None, rotvec, translation)
        projected, _ = cv2.projectPoints(points3d, rotvec, translation, matrix, None)
        rms = float(np.sqrt(((projected.reshape(-1, 2) - pixels) ** 2).sum(1).mean()))
        in_front = (points3d @ cv2.Rodrigues(rotvec)[0].T + translation.reshape(1, 3))[:, 2].min() > 0
        if in_front and (best is None or rms < best["rms"]):
            best = {"rotvec": rotvec.reshape(3), "translation": translation.reshape(3), "focal": focal, "rms": rms}
    if best is None:
        raise ASMInputError("no camera places the head in front of it; the landmarks do not match the head")
    return best
