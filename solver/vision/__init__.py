"""Photos and what is seen in them: loading, face landmarks, cameras (PnP), the photometric patch term and
silhouettes. Imports `core` (and `rig`/`model` where needed); the heavy libraries (MediaPipe, OpenCV) load inside
the functions that use them."""
