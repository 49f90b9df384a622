"""asm.* operators, one module per user action, on the shared step runner of `base`."""
from .cancel_job import ASM_OT_cancel_job
from .check_photos import ASM_OT_check_photos
from .edit_landmarks import ASM_OT_edit_landmarks
from .expressions import ASM_OT_make_expressions
from .fit_photos import ASM_OT_fit_photos
from .generate_rig import ASM_OT_generate_rig
from .photo_list import ASM_OT_add_photos, ASM_OT_clear_photos, ASM_OT_remove_photo
from .rebake_rig import ASM_OT_rebake_rig
from .remove_rig import ASM_OT_remove_rig

CLASSES = (ASM_OT_generate_rig, ASM_OT_cancel_job, ASM_OT_remove_rig, ASM_OT_edit_landmarks, ASM_OT_rebake_rig,
           ASM_OT_add_photos, ASM_OT_remove_photo, ASM_OT_clear_photos, ASM_OT_check_photos, ASM_OT_fit_photos,
           ASM_OT_make_expressions)
