# Sluice. `make run` and `make test` are the two commands; each builds .venv on first use.
# Run `make help` for the rest.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENV    ?= default
GUIDED ?=
EVENT  ?=
export SAM_CLI_TELEMETRY = 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help run test test-busy test-fast lint build deploy glue-package invoke-start-crawler invoke-start-job \
        glue-test-docker bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt requirements-lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Sluice needs $(PYTHON) (the Lambda and Glue 5.0 Python)."; exit 1; }
	@command -v java >/dev/null || echo "warning: no java on PATH; the Glue job's local Spark needs Java 17."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

run: $(STAMP) ## the whole pipeline offline: start it, ingest samples/, wait for the email, show the output
	$(BIN)/sluice demo

# The end-to-end modules mostly wait (crawl pacing, redelivery, Spark): four workers overlap the
# waits on two cores; a module stays on one worker, since its runtime is module-scoped.
test: $(STAMP) ## every test, offline (unit, functions, template, Glue job, local runtime end to end)
	$(BIN)/python -m pytest -n 4 --dist loadfile

test-busy: $(STAMP) ## make test beside two CPU-bound processes: no test may need an idle machine
	@bash -c 'for i in 1 2; do ( while :; do :; done ) & done; trap "kill \$$(jobs -p) 2>/dev/null" EXIT; \
	  $(MAKE) --no-print-directory test'

test-fast: $(STAMP) ## the tier to run while you type: pure and moto-backed tests, no Spark, no runtime
	$(BIN)/python -m pytest -n 2 -m "not spark and not slow" tests/unit tests/integration tests/functions \
	  tests/template functions sluice

lint: $(STAMP) ## ruff, mypy, cfn-lint, checkov and sam validate on the template
	$(BIN)/ruff check .
	$(BIN)/mypy functions/ledger_layer/ledger functions/start_crawler
	$(BIN)/mypy functions/start_job
	$(BIN)/mypy sluice glue/sluice_glue glue/etl_job.py tools
	$(BIN)/cfn-lint template.yaml
	$(BIN)/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(BIN)/sam validate --lint

build: $(STAMP) ## sam build (python3.11, arm64; pure-Python dependencies, no Docker needed)
	$(BIN)/sam build

glue-package: $(STAMP) ## zip the Glue job's modules (sluice_glue + ledger) for --extra-py-files
	$(BIN)/python -m tools.publish_glue --zip glue/dist/sluice_glue.zip

# The one deploy, first time and after (tools/deploy.py): sam build, sam deploy (guided when the stack
# samconfig.toml names does not exist yet, or GUIDED=1), then the job's script, modules zip and
# datasets.toml to the stack just deployed, in its Region. The local runtime takes the same steps.
deploy: $(STAMP) ## build, deploy (guided the first time), publish the job's code; ENV=prod for [prod]
	$(BIN)/python -m tools.deploy --config-env $(ENV) $(if $(GUIDED),--guided)

invoke-start-crawler: build ## sam local invoke StartCrawlerFunction (needs Docker); EVENT=events/...
	$(BIN)/sam local invoke StartCrawlerFunction --env-vars events/env.json \
	  -e $(or $(EVENT),events/sqs-s3-put.json)

invoke-start-job: build ## sam local invoke StartJobFunction (needs Docker); EVENT=events/...
	$(BIN)/sam local invoke StartJobFunction --env-vars events/env.json \
	  -e $(or $(EVENT),events/crawler-succeeded.json)

GLUE_IMAGE ?= public.ecr.aws/glue/aws-glue-libs:5
# As AWS's "Develop and test AWS Glue jobs locally using a Docker image" runs pytest: the checkout
# mounted at /home/hadoop/workspace, the image's bash entrypoint given -c, fake credentials so every
# call stays local. What only the container can test is the job against Glue 5.0's own libraries,
# so none of them is replaced: the image's versions of boto3, botocore, s3transfer, pyarrow,
# pandas, numpy and pyspark are written to a constraints file first, and pip installs the tests'
# packages (moto, pytest, ...) under those constraints, failing rather than upgrading one; `pip
# check` then proves the set consistent. tests/glue runs with --storage local against moto (Glue's
# S3 connector cannot be pointed at an in-process emulator); the job's Glue bootstrap runs for real
# there (tests/glue/test_write_path.py, test_glue_bootstrap_in_the_glue_image: skipped elsewhere).
# Checked line by line against that page; it cannot run here (no Docker engine).
GLUE_TEST_PACKAGES = "moto[server,s3,sqs,dynamodb,events,glue,sns,iam]" aws-sam-translator \
  aws-lambda-powertools rich chispa pytest
glue-test-docker: ## the Glue job's tests inside AWS's Glue 5.0 image, on its own libraries (needs Docker)
	docker run --rm -v "$(CURDIR)":/home/hadoop/workspace --workdir /home/hadoop/workspace \
	  -e AWS_ACCESS_KEY_ID=testing -e AWS_SECRET_ACCESS_KEY=testing -e AWS_DEFAULT_REGION=us-east-1 \
	  -e SLUICE_IN_GLUE_IMAGE=1 \
	  $(GLUE_IMAGE) -c 'export PYTHONPATH=/home/hadoop/workspace/glue:/home/hadoop/workspace/functions/ledger_layer:/home/hadoop/workspace:$$PYTHONPATH \
	    && pip3 freeze | grep -iE "^(boto3|botocore|s3transfer|pyarrow|pandas|numpy|pyspark)==" > /tmp/glue-own.txt \
	    && pip3 install --user -q -c /tmp/glue-own.txt $(GLUE_TEST_PACKAGES) && pip3 check \
	    && python3 -m pytest -p no:cacheprovider -o addopts="-ra --strict-markers --import-mode=importlib" tests/glue'

bench: $(STAMP) ## every benchmark in bench/ (prints ratios; nothing here is a pass/fail test)
	$(BIN)/python bench/bench_cold_import.py
	$(BIN)/python bench/bench_glue_job.py
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_iam.py

lock: ## re-resolve requirements-dev.txt and rewrite requirements-lock.txt
	rm -rf /tmp/sluice-lock && $(PYTHON) -m venv /tmp/sluice-lock
	grep -v '^-c ' requirements-dev.txt > /tmp/sluice-lock/req.txt
	/tmp/sluice-lock/bin/pip install --quiet -r /tmp/sluice-lock/req.txt pyspark==3.5.9
	/tmp/sluice-lock/bin/pip freeze --exclude-editable > requirements-lock.txt

clean: ## remove build output and local runtime state (keeps .venv)
	rm -rf .aws-sam glue/dist .sluice .pytest_cache .ruff_cache spark-warehouse
