# asr-engines: make install | make engines MODEL=wav2vec2 | make bench MODEL=wav2vec2 | make test | make test-slow
# MODEL: an alias (asr-engines export --help lists them), a Hub id, a local folder, or random:wav2vec2-base.

PYTHON     ?= .venv/bin/python
ASR        ?= .venv/bin/asr-engines
MODEL      ?= wav2vec2
PRECISIONS ?= fp32 fp16 int8
BACKEND    ?= auto
# File-name form of MODEL: random:wav2vec2-base -> wav2vec2-base-random, org/name -> name
NAME       := $(if $(findstring random:,$(MODEL)),$(subst random:,,$(MODEL))-random,$(notdir $(MODEL)))
ONNX_DIR   ?= onnx/$(NAME)
ENGINES_DIR ?= engines
BENCH_ARGS ?=
CHECK_ONNX ?=

.PHONY: install install-jetson onnx engines bench test test-slow check-device clean

install: .venv/.installed
.venv/.installed: pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet torch==2.13.0   # the CPU wheel first, so nothing pulls a CUDA build
	.venv/bin/pip install --quiet -e '.[export,build,bench,cpu,report,nvml,serve,test]'
	touch $@

# On a Jetson: JetPack's TensorRT is seen through the system site-packages; pycuda builds against CUDA.
install-jetson:
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Python >= 3.10 needed (JetPack 6); JetPack 5's TensorRT bindings are for Python 3.8"; exit 1; }
	@command -v nvcc >/dev/null || { echo "nvcc not on PATH: export PATH=/usr/local/cuda/bin:\$$PATH (pycuda builds from source)"; exit 1; }
	@python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| { echo "Python headers missing (pycuda builds against them): sudo apt install python3-dev"; exit 1; }
	python3 -m venv --system-site-packages .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/python -c "import tensorrt" || { echo "TensorRT's Python bindings missing: sudo apt install python3-libnvinfer"; exit 1; }
	.venv/bin/pip install --quiet -e '.[jetson,build,bench,report,serve,test]'
	# ONNX Runtime's quantizer makes the INT8 files; NVIDIA's Jetson wheel of onnxruntime-gpu serves if installed.
	.venv/bin/python -c "import onnxruntime" 2>/dev/null || .venv/bin/pip install --quiet onnxruntime
	touch .venv/.installed

onnx: $(ONNX_DIR)/export.json
$(ONNX_DIR)/export.json:
	$(ASR) export $(MODEL) --out $(ONNX_DIR)

engines: onnx
	$(ASR) build $(ONNX_DIR) --out $(ENGINES_DIR) --precisions "$(PRECISIONS)" --backend $(BACKEND)

bench:
	$(ASR) bench $(ENGINES_DIR)/$(NAME)-*.json --out results/$(NAME) $(BENCH_ARGS)

# The quick suite (two workers: the development machine's two cores); test-slow: real weights, a fresh venv
# beside transformers 5. CI (.ci/run) runs both.
test:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -n 2 -m "not slow"

test-slow:
	$(PYTHON) -m pytest -q -n 2 -m slow

check-device:
	$(ASR) check-device $(CHECK_ONNX)

# Everything the targets above write (the .gitignore lists the same).
clean:
	rm -rf onnx results reports .cache engines/*-fp32* engines/*-fp16* engines/*-int8* engines/timing.cache engines/.staging-*
