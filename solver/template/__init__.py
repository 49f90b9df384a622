"""The skeleton template (one data file, skeleton.json), the MediaPipe canonical face it is written in and the named
demo poses, with their loaders. Imports only `core`."""
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
