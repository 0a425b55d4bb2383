# indoor_parsing — every target installs what it needs first (idempotent: seconds once installed).
# GPU users: TORCH_SPEC / TORCH_INDEX_URL select the torch build (README "Install").
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/indoor-parsing
DEMO := configs/experiments/baseline_resnet18_synthrooms.yaml
DEMO_DIR := runs/baseline_resnet18_synthrooms
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install test lint format demo docs claims clean

install:
	@bash scripts/install.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -q

demo: install
	$(CLI) fit --config $(DEMO)
	$(CLI) test --config $(DEMO) --ckpt_path $(DEMO_DIR)/checkpoints/best.ckpt
	$(CLI) predict --config $(DEMO) --ckpt_path $(DEMO_DIR)/checkpoints/best.ckpt \
		--data.init_args.predict_split test --trainer.limit_predict_batches 2 \
		--predictions.output_dir $(DEMO_DIR)/predictions

claims: install
	$(CLI) claims --out docs/claims $(CLAIMS_ARGS)

docs: install
	$(PY) -m indoor_parsing.tools.synthrooms_preview --out docs/synthrooms.png

clean:
	rm -rf runs lightning_logs .pytest_cache
