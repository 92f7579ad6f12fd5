from .checkpoint import (CheckpointMismatchError, extract_state_dict,
                         load_backbone_checkpoint, load_state_dict_strict)
from .pooling import pool_backbone_output

__all__ = [
    'CheckpointMismatchError', 'extract_state_dict',
    'load_backbone_checkpoint', 'load_state_dict_strict',
    'pool_backbone_output'
]
