"""What the Blender side and the solver agree on, in one place: task names and the job folder's files
(`tasks`), the arrays a job carries (`keys`), the settings users choose from (`choices`, `settings`) and the
landmark vocabulary with its loader (`landmarks`); and what build.py and the add-on agree on about the extension
zips (`zips`: the Python each Blender runs, each zip's name).

Both sides import this package and nothing of each other: numpy and the standard library only, so that the
extension's Blender process never loads torch and the solver never loads bpy (tests/test_layers.py).
"""
