# The two set-up-included commands of the README:
#   make demo   set up .venv, generate the shapes data, fine-tune the demo
#               Mask R-CNN, print the COCO bbox/segm table
#   make test   set up .venv, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG := configs/maskrcnn_bcssl-atto-k9_shapes_demo.py
DEMO_WORK_DIR := work_dirs/maskrcnn_bcssl-atto-k9_shapes_demo

.PHONY: env demo test clean-demo

env:
	@VENV=$(VENV) bash tools/install_env.sh

demo: env
	$(PY) tools/data/make_shapes_coco.py --out-dir data/shapes
	# --resume continues an unfinished run and skips a finished one
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_WORK_DIR) --resume
	$(PY) tools/test.py $(DEMO_CONFIG) $(DEMO_WORK_DIR)/last_checkpoint \
		--work-dir $(DEMO_WORK_DIR)/test

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-demo:
	rm -rf $(DEMO_WORK_DIR)
