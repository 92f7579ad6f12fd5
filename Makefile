# The two set-up-included commands of the README:
#   make demo   set up .venv, generate the shapes data, DINO-pretrain a tiny
#               BC-SSL on its images, extract the teacher, fine-tune Mask
#               R-CNN from it, print the COCO bbox/segm table
#   make test   set up .venv, run the test suite
#   make lint   flake8, isort and yapf with OpenMMLab's settings (setup.cfg)
VENV ?= .venv
PY := $(VENV)/bin/python
DINO_CONFIG := configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py
DINO_WORK_DIR := work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes
TEACHER := $(DINO_WORK_DIR)/teacher.pth
DEMO_CONFIG := configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py
DEMO_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes
# the baseline of the README's comparison: same Mask R-CNN, random init
RANDOM_CONFIG := configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py
RANDOM_WORK_DIR := work_dirs/mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes

.PHONY: env data demo demo-random-init test lint clean-demo

env:
	@VENV=$(VENV) bash tools/install_env.sh

data: env
	$(PY) tools/data/make_shapes_coco.py --out-dir data/shapes

# --resume continues an unfinished run and skips a finished one
demo: data
	$(PY) tools/train.py $(DINO_CONFIG) --work-dir $(DINO_WORK_DIR) --resume
	$(PY) tools/model_converters/extract_dino_backbone.py \
		$$(cat $(DINO_WORK_DIR)/last_checkpoint) $(TEACHER) --force
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR) --resume
	$(PY) tools/test.py $(DEMO_CONFIG) $(DEMO_WORK_DIR)/last_checkpoint \
		--work-dir $(DEMO_WORK_DIR)/test

demo-random-init: data
	$(PY) tools/train.py $(RANDOM_CONFIG) --work-dir $(RANDOM_WORK_DIR) --resume
	$(PY) tools/test.py $(RANDOM_CONFIG) $(RANDOM_WORK_DIR)/last_checkpoint \
		--work-dir $(RANDOM_WORK_DIR)/test

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

# OpenMMLab's flake8 / isort / yapf (settings in setup.cfg); CI runs it first
LINT_PATHS := bcssl_mm tools tests configs setup.py
lint: env
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --diff --recursive $(LINT_PATHS)

clean-demo:
	rm -rf $(DINO_WORK_DIR) $(DEMO_WORK_DIR) $(RANDOM_WORK_DIR)
