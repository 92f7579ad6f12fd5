from .zoo import (ModelSpec, add_model_args, build_classifier, list_images, load_images,
                  load_model, parse_checkpoints, parse_model_name,
                  tokens_to_map)

__all__ = [
    'ModelSpec', 'add_model_args', 'build_classifier', 'list_images', 'load_images',
    'load_model', 'parse_checkpoints', 'parse_model_name', 'tokens_to_map'
]
