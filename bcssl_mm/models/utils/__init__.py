from .checkpoint import (CheckpointMismatchError, extract_state_dict,
                         load_backbone_checkpoint)

__all__ = [
    'CheckpointMismatchError', 'extract_state_dict', 'load_backbone_checkpoint'
]
