from .dino import (DINO, TEACHER_TEMP_KEY, embed_views, group_views,
                   set_step_teacher_temp, step_teacher_temp)
from .dmae_lite import DMAELite, attention_distill_loss
from .mocov3 import MOMENTUM_KEY, BCSSLMoCoV3, set_step_momentum, step_momentum
from .momentum_encoder import MomentumEncoderMixin
from .selfpatch import SelfPatch

__all__ = [
    'BCSSLMoCoV3', 'DINO', 'DMAELite', 'MOMENTUM_KEY', 'MomentumEncoderMixin',
    'SelfPatch', 'TEACHER_TEMP_KEY', 'attention_distill_loss', 'embed_views',
    'group_views', 'set_step_momentum', 'set_step_teacher_temp',
    'step_momentum', 'step_teacher_temp'
]
