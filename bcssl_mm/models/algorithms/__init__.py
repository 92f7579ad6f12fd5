from .dino import DINO, TEACHER_TEMP_KEY, embed_views, step_teacher_temp

__all__ = ['DINO', 'TEACHER_TEMP_KEY', 'embed_views', 'step_teacher_temp']
