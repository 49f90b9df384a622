"""Known cameras around a test head, shared by the solver's and Blender's camera tests (no OpenCV needed)."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def camera_set(centre, distance, yaws=(0.0, 35.0, -30.0), pitches=(5.0, -8.0, 10.0), focals=(900.0, 1500.0, 2400.0),
               sizes=((1000, 800), (1200, 1600), (2000, 1500))):
    """Photos of a head looking along +Z with +Y up (the sample's OBJ axes), from different sides and lenses."""
    rotvecs, translations = [], []
    for yaw, pitch in zip(yaws, pitches):
        turn = Rotation.from_euler("x", np.radians(pitch)) * Rotation.from_euler("y", np.radians(yaw)) \
            * Rotation.from_euler("x", np.pi)
        rotvecs.append(turn.as_rotvec())
        translations.append(-turn.apply(centre) + [0.0, 0.0, distance])
    return np.array(rotvecs), np.array(translations), np.array(focals), np.array(sizes, dtype=float)
