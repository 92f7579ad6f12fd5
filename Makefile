# The two set-up-included commands of the README:
#   make demo   set up .venv, generate the shapes data, DINO-pretrain a tiny
#               BC-SSL on its images (k-NN monitor on), extract the teacher,
#               evaluate it against a random-init backbone (k-NN, linear
#               probe, corrupted val), fine-tune Mask R-CNN from it, print the
#               COCO bbox/segm table and the collector's results table
#   make demo-mocov3  the same chain with MoCo v3 pretraining (k-NN, Mask
#               R-CNN), beside the DINO demo's, and the collector's table
#   make demo-selfpatch  the same chain with SelfPatch pretraining (DINO plus
#               the patch-level loss on the stage-3 map), beside DINO's
#   make demo-maelite  MAE pretraining of a small ViT, of a larger one, then
#               D-MAE-Lite distillation of the larger into the small one;
#               k-NN of each and the collector's table
#   make test   set up .venv, run the test suite
#   make lint   flake8, isort and yapf with OpenMMLab's settings (setup.cfg)
VENV ?= .venv
PY := $(VENV)/bin/python
DINO_CONFIG := configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py
DINO_WORK_DIR := work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes
TEACHER := $(DINO_WORK_DIR)/teacher.pth
DEMO_CONFIG := configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py
DEMO_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes
# evaluation on the shapes classification split (data/shapes/cls)
RANDOM_NAME := random_bcssl-atto-k9_init_shapes
RANDOM_EVAL_DIR := work_dirs/$(RANDOM_NAME)
LINEAR_CONFIG := configs/dino/benchmarks/bcssl-atto-k9_linear-1xb64-coslr-30e_shapes.py
LINEAR_WORK_DIR := work_dirs/bcssl-atto-k9_linear-1xb64-coslr-30e_shapes
RANDOM_LINEAR_CONFIG := configs/dino/benchmarks/bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes.py
RANDOM_LINEAR_WORK_DIR := work_dirs/bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes
CORRUPTED_VAL := data/shapes/cls-c
# the baseline of the README's comparison: same Mask R-CNN, random init
RANDOM_CONFIG := configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py
RANDOM_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes
# MoCo v3 on the same data, backbone and budget (make demo-mocov3)
MOCOV3_CONFIG := configs/mocov3/mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py
MOCOV3_WORK_DIR := work_dirs/mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes
MOCOV3_BASE := $(MOCOV3_WORK_DIR)/base.pth
MOCOV3_DEMO_CONFIG := configs/mocov3/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py
MOCOV3_DEMO_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes_mocov3
# SelfPatch on the same data, backbone and budget (make demo-selfpatch)
SELFPATCH_CONFIG := configs/selfpatch/selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes.py
SELFPATCH_WORK_DIR := work_dirs/selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes
SELFPATCH_TEACHER := $(SELFPATCH_WORK_DIR)/teacher.pth
SELFPATCH_DEMO_CONFIG := configs/selfpatch/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py
SELFPATCH_DEMO_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes_selfpatch
# MAE-Lite on the same images (make demo-maelite): a small ViT, a larger one
# (the teacher), and the small one distilled from it
MAE_CONFIG := configs/maelite/maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py
MAE_WORK_DIR := work_dirs/maelite_vit-pico-p16_1xb32-coslr-100e_shapes
MAE_TEACHER_CONFIG := configs/maelite/maelite_vit-nano-p16_1xb32-coslr-100e_shapes.py
MAE_TEACHER_WORK_DIR := work_dirs/maelite_vit-nano-p16_1xb32-coslr-100e_shapes
DMAE_CONFIG := configs/maelite/dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py
DMAE_WORK_DIR := work_dirs/dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes
MAE_RANDOM_NAME := random_vit-pico-p16_init_shapes

.PHONY: env data demo demo-dino demo-dino-knn demo-dino-maskrcnn demo-eval \
	demo-mocov3 demo-selfpatch demo-maelite demo-random-init test lint \
	clean-demo

env:
	@VENV=$(VENV) bash tools/install_env.sh

data: env
	$(PY) tools/data/make_shapes_coco.py --out-dir data/shapes

# --resume continues an unfinished run and skips a finished one
demo: demo-eval demo-dino-maskrcnn
	$(PY) tools/analysis_tools/collect_results.py --root work_dirs \
		--out work_dirs/results.md

# DINO pretraining and the teacher's extraction
demo-dino: data
	$(PY) tools/train.py $(DINO_CONFIG) --work-dir $(DINO_WORK_DIR) --resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(DINO_WORK_DIR)/last_checkpoint) $(TEACHER) --force

demo-dino-knn: demo-dino
	$(PY) tools/benchmarks/knn_eval.py $(DINO_CONFIG) $(TEACHER) \
		--dataset shapes_cls --num-workers 2 --work-dir $(DINO_WORK_DIR)/knn \
		--dump-features $(DINO_WORK_DIR)/knn/features

demo-dino-maskrcnn: demo-dino
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR) --resume
	$(PY) tools/test.py $(DEMO_CONFIG) $(DEMO_WORK_DIR)/last_checkpoint \
		--work-dir $(DEMO_WORK_DIR)/test

# MoCo v3 beside DINO, same backbone, data and budget: pretraining, the base
# encoder's extraction (checked strictly against the config's backbone),
# k-NN, Mask R-CNN; then the collector's table with both (the DINO steps
# are skipped where `make demo` already ran them)
demo-mocov3: demo-dino-knn demo-dino-maskrcnn
	$(PY) tools/train.py $(MOCOV3_CONFIG) --work-dir $(MOCOV3_WORK_DIR) \
		--resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(MOCOV3_WORK_DIR)/last_checkpoint) $(MOCOV3_BASE) --force \
		--config $(MOCOV3_CONFIG)
	$(PY) tools/benchmarks/knn_eval.py $(MOCOV3_CONFIG) $(MOCOV3_BASE) \
		--dataset shapes_cls --num-workers 2 \
		--work-dir $(MOCOV3_WORK_DIR)/knn
	$(PY) tools/train.py $(MOCOV3_DEMO_CONFIG) \
		--work-dir $(MOCOV3_DEMO_WORK_DIR) --resume
	$(PY) tools/test.py $(MOCOV3_DEMO_CONFIG) \
		$(MOCOV3_DEMO_WORK_DIR)/last_checkpoint \
		--work-dir $(MOCOV3_DEMO_WORK_DIR)/test
	$(PY) tools/analysis_tools/collect_results.py --root work_dirs \
		--out work_dirs/results.md

# SelfPatch beside DINO, same backbone, data and budget: pretraining, the
# teacher's extraction (checked strictly against the config's backbone),
# k-NN, Mask R-CNN; then the collector's table (the DINO steps are skipped
# where `make demo` already ran them)
demo-selfpatch: demo-dino-knn demo-dino-maskrcnn
	$(PY) tools/train.py $(SELFPATCH_CONFIG) --work-dir $(SELFPATCH_WORK_DIR) \
		--resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(SELFPATCH_WORK_DIR)/last_checkpoint) $(SELFPATCH_TEACHER) \
		--force --config $(SELFPATCH_CONFIG)
	$(PY) tools/benchmarks/knn_eval.py $(SELFPATCH_CONFIG) \
		$(SELFPATCH_TEACHER) --dataset shapes_cls --num-workers 2 \
		--work-dir $(SELFPATCH_WORK_DIR)/knn
	$(PY) tools/train.py $(SELFPATCH_DEMO_CONFIG) \
		--work-dir $(SELFPATCH_DEMO_WORK_DIR) --resume
	$(PY) tools/test.py $(SELFPATCH_DEMO_CONFIG) \
		$(SELFPATCH_DEMO_WORK_DIR)/last_checkpoint \
		--work-dir $(SELFPATCH_DEMO_WORK_DIR)/test
	$(PY) tools/analysis_tools/collect_results.py --root work_dirs \
		--out work_dirs/results.md

# MAE-Lite: MAE of the small ViT, MAE of the larger teacher, D-MAE-Lite of
# the small ViT from that teacher; each encoder extracted (checked strictly)
# and evaluated by k-NN beside a random-init small ViT; the collector's table
demo-maelite: data
	$(PY) tools/train.py $(MAE_CONFIG) --work-dir $(MAE_WORK_DIR) --resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(MAE_WORK_DIR)/last_checkpoint) $(MAE_WORK_DIR)/encoder.pth \
		--force --config $(MAE_CONFIG)
	$(PY) tools/benchmarks/knn_eval.py $(MAE_CONFIG) \
		$(MAE_WORK_DIR)/encoder.pth --dataset shapes_cls --num-workers 2 \
		--work-dir $(MAE_WORK_DIR)/knn
	$(PY) tools/train.py $(MAE_TEACHER_CONFIG) \
		--work-dir $(MAE_TEACHER_WORK_DIR) --resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(MAE_TEACHER_WORK_DIR)/last_checkpoint) \
		$(MAE_TEACHER_WORK_DIR)/encoder.pth --force \
		--config $(MAE_TEACHER_CONFIG)
	$(PY) tools/benchmarks/knn_eval.py $(MAE_TEACHER_CONFIG) \
		$(MAE_TEACHER_WORK_DIR)/encoder.pth --dataset shapes_cls \
		--num-workers 2 --work-dir $(MAE_TEACHER_WORK_DIR)/knn
	$(PY) tools/train.py $(DMAE_CONFIG) --work-dir $(DMAE_WORK_DIR) --resume
	$(PY) tools/model_converters/extract_backbone.py \
		$$(cat $(DMAE_WORK_DIR)/last_checkpoint) $(DMAE_WORK_DIR)/encoder.pth \
		--force --config $(DMAE_CONFIG)
	$(PY) tools/benchmarks/knn_eval.py $(DMAE_CONFIG) \
		$(DMAE_WORK_DIR)/encoder.pth --dataset shapes_cls --num-workers 2 \
		--work-dir $(DMAE_WORK_DIR)/knn
	$(PY) tools/benchmarks/knn_eval.py $(MAE_CONFIG) --dataset shapes_cls \
		--num-workers 2 --pretrain-name $(MAE_RANDOM_NAME) \
		--work-dir work_dirs/$(MAE_RANDOM_NAME)/knn
	$(PY) tools/analysis_tools/collect_results.py --root work_dirs \
		--out work_dirs/results.md

# the teacher against a random-init backbone: k-NN, linear probe (full
# protocol and the cached-feature fast path), corrupted val
demo-eval: demo-dino-knn
	$(PY) tools/benchmarks/knn_eval.py $(DINO_CONFIG) --dataset shapes_cls \
		--num-workers 2 --pretrain-name $(RANDOM_NAME) \
		--work-dir $(RANDOM_EVAL_DIR)/knn \
		--dump-features $(RANDOM_EVAL_DIR)/knn/features
	$(PY) tools/benchmarks/linear_probe_features.py \
		$(DINO_WORK_DIR)/knn/features --work-dir $(DINO_WORK_DIR)/linear_features
	$(PY) tools/benchmarks/linear_probe_features.py \
		$(RANDOM_EVAL_DIR)/knn/features \
		--work-dir $(RANDOM_EVAL_DIR)/linear_features
	$(PY) tools/train.py $(LINEAR_CONFIG) --work-dir $(LINEAR_WORK_DIR) --resume
	$(PY) tools/train.py $(RANDOM_LINEAR_CONFIG) \
		--work-dir $(RANDOM_LINEAR_WORK_DIR) --resume
	$(PY) tools/data/make_corruptions.py data/shapes/cls/val $(CORRUPTED_VAL) \
		--max-per-class 10
	$(PY) tools/benchmarks/robustness.py $(RANDOM_LINEAR_CONFIG) \
		$$(cat $(RANDOM_LINEAR_WORK_DIR)/last_checkpoint) \
		--corrupted $(CORRUPTED_VAL) --work-dir $(RANDOM_LINEAR_WORK_DIR) \
		--batch-size 64 --num-workers 2 --pretrain-name $(RANDOM_NAME)
	$(PY) tools/benchmarks/robustness.py $(LINEAR_CONFIG) \
		$$(cat $(LINEAR_WORK_DIR)/last_checkpoint) \
		--corrupted $(CORRUPTED_VAL) --work-dir $(LINEAR_WORK_DIR) \
		--batch-size 64 --num-workers 2 \
		--reference $(RANDOM_LINEAR_WORK_DIR)/corruption.result.json

demo-random-init: data
	$(PY) tools/train.py $(RANDOM_CONFIG) --work-dir $(RANDOM_WORK_DIR) --resume
	$(PY) tools/test.py $(RANDOM_CONFIG) $(RANDOM_WORK_DIR)/last_checkpoint \
		--work-dir $(RANDOM_WORK_DIR)/test --pretrain-name $(RANDOM_NAME)

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

# OpenMMLab's flake8 / isort / yapf (settings in setup.cfg); CI runs it first
LINT_PATHS := bcssl_mm tools tests configs setup.py
lint: env
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)

clean-demo:
	rm -rf $(DINO_WORK_DIR) $(DEMO_WORK_DIR) $(RANDOM_WORK_DIR) \
		$(RANDOM_EVAL_DIR) $(LINEAR_WORK_DIR) $(RANDOM_LINEAR_WORK_DIR) \
		$(CORRUPTED_VAL) $(MOCOV3_WORK_DIR) $(MOCOV3_DEMO_WORK_DIR) \
		$(SELFPATCH_WORK_DIR) $(SELFPATCH_DEMO_WORK_DIR) $(MAE_WORK_DIR) \
		$(MAE_TEACHER_WORK_DIR) $(DMAE_WORK_DIR) work_dirs/$(MAE_RANDOM_NAME)
