"""Shared pieces of ``tools/analysis_tools``: the model vocabulary and its
builder (``zoo``), the FLOP counter (``flops``), timing and peak memory
(``bench``) and the text table (``table``)."""
from .bench import (PeakMemory, check_finite, median_and_spread,
                    time_interleaved, time_repeats, time_round_robin,
                    time_train_steps, timed)
from .flops import count_macs, sdpa_flop_jit
from .table import format_table
from .zoo import (ModelSpec, add_model_args, build_classifier, build_model,
                  list_images, load_classifier_weights, load_images,
                  load_model, parse_checkpoints, parse_model_name,
                  parse_model_names, quiet_mmengine, tokens_to_map)

__all__ = [
    'ModelSpec', 'PeakMemory', 'add_model_args', 'build_classifier',
    'build_model', 'check_finite', 'count_macs', 'format_table', 'list_images',
    'load_classifier_weights', 'load_images', 'load_model',
    'median_and_spread', 'parse_checkpoints', 'parse_model_name',
    'parse_model_names', 'quiet_mmengine', 'sdpa_flop_jit', 'time_interleaved',
    'time_repeats', 'time_round_robin', 'time_train_steps', 'timed',
    'tokens_to_map'
]
