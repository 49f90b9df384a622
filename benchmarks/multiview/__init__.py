"""Multi-view benchmark with ground truth: textured head scans rendered with Cycles as seeded view sets (1-8
"photos" each), the sample rig (MakeHuman head, a different mesh and person) fitted to them by the product's photo
fit, and every result measured against the scan as the field does (benchmarks/multiview/run.py)."""
