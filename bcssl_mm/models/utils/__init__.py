from .checkpoint import (CheckpointMismatchError, extract_state_dict,
                         load_backbone_checkpoint, load_state_dict_strict)
from .pooling import pool_backbone_output
from .step_values import get_step_value, set_step_value

__all__ = [
    'CheckpointMismatchError', 'extract_state_dict', 'get_step_value',
    'load_backbone_checkpoint', 'load_state_dict_strict',
    'pool_backbone_output', 'set_step_value'
]
