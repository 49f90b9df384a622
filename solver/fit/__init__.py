"""Fitting (ASM.md §8): the stage runner, the named losses, and the photo and scan fits built on them. Imports every
layer below it."""
