"""The only place that converts between Blender data and numpy arrays (ARCHITECTURE.md)."""
