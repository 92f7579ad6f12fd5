"""Evaluation of pretrained backbones: k-NN, linear probe, robustness, and
the result files that ``tools/analysis_tools/collect_results.py`` reads."""
from .results import (KINDS, ResultFileError, parse_pretrain_name,
                      pretrain_from_checkpoint, read_result, read_results,
                      result_path, write_result)

__all__ = [
    'KINDS', 'ResultFileError', 'parse_pretrain_name',
    'pretrain_from_checkpoint', 'read_result', 'read_results', 'result_path',
    'write_result'
]
