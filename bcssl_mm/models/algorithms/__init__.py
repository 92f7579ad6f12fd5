from .dino import (DINO, TEACHER_TEMP_KEY, embed_views, set_step_teacher_temp,
                   step_teacher_temp)

__all__ = [
    'DINO', 'TEACHER_TEMP_KEY', 'embed_views', 'set_step_teacher_temp',
    'step_teacher_temp'
]
