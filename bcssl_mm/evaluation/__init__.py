"""Evaluation of pretrained backbones: k-NN, linear probe, robustness, and
the result files that ``tools/analysis_tools/collect_results.py`` reads."""
from .features import (FeatureCacheError, build_eval_backbone,
                       extract_features, load_feature_cache, load_features,
                       save_features)
from .knn import knn_classify, knn_neighbours, knn_predict
from .results import (KINDS, ResultFileError, backbone_init_checkpoint,
                      parse_pretrain_name, pretrain_from_checkpoint,
                      read_result, read_results, result_path, write_result)

__all__ = [
    'FeatureCacheError', 'build_eval_backbone', 'extract_features',
    'load_feature_cache', 'load_features', 'save_features', 'knn_classify',
    'knn_neighbours', 'knn_predict', 'KINDS', 'ResultFileError',
    'parse_pretrain_name', 'pretrain_from_checkpoint', 'read_result',
    'read_results', 'result_path', 'write_result'
]
