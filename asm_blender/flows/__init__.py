"""What the user's actions do, as steps (`steps`): Generate Rig (`generate`), Check Photos and Fit to Photos
(`photos`, `fit`), and the re-bake of edited parameters (`rebake`). A flow reads the scene through scene_io, runs
solver jobs (asm_blender.jobs) and hands the results to scene_io; it writes nothing to the scene itself. The
operators drive flows on a timer, the headless commands in a loop."""
