"""The names of the arrays that travel in a job's inputs.npz and result.npz, where both sides read them."""
from __future__ import annotations

MESH_KEYS = ("vertices", "triangles", "corner_uv", "landmarks", "landmark_valid")  # a head: (N, 3), (T, 3),
# (T, 3, 2) or absent, (478, 3) object space (0 where missing), (478,) bool
RIG_PARAMETER_KEYS = ("zeta", "bind_triangle", "bind_offset", "mixture_logits", "mixture_offsets",
                      "mixture_covariance")  # what an artist edits and a fit moves: binding points, Gaussians
PHOTO_KEYS = ("detections", "found", "image_size", "exif_focal")  # photos' landmarks when the client found them
SCAN_KEYS = ("scan_vertices", "scan_triangles", "scan_landmarks", "scan_landmark_valid")
FIT_POSE_KEYS = ("fit_log_scale", "fit_rotvec", "fit_translation")  # (J, 3) the fitted shared pose
PHOTO_POSE_KEYS = ("photo_log_scale", "photo_rotvec", "photo_translation")  # (V, J, 3) each photo's whole pose
BASE_POSE_KEYS = ("base_log_scale", "base_rotvec", "base_translation")  # (J, 3) the pose expressions start from
EXPRESSION_POSE_KEYS = ("expression_log_scale", "expression_rotvec", "expression_translation")  # (E, J, 3) each
# expression's whole pose; with "expression_names" (E,), "expression_rms" and "expression_own_rms" (E,) mesh units
CAMERA_KEYS = ("camera_rotvec", "camera_translation", "camera_focal", "camera_image_size")  # (V, 3), (V, 3), (V,),
# (V, 2): OpenCV cameras in the rig mesh's object space
WARNINGS_KEY = "warnings"  # result.npz: a JSON list of messages for the user
