# runtimes/: the runtime bootstraps are scripts, nothing to
# compile, except that the Python runtime's module is byte-compiled here.
# Inside a sandbox this directory is read-only, so without a __pycache__
# made beforehand every cold start would compile it again (~5 ms).
PY_RUNTIME_SRC := runtimes/python/faas_runtime.py
PY_RUNTIME_STAMP := $(OBJS)/runtimes/python.stamp

$(PY_RUNTIME_STAMP): $(PY_RUNTIME_SRC)
	@mkdir -p $(dir $@)
	@echo "  PYC $<"
	@/usr/bin/python3 -I -S -c 'import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)' $<
	@touch $@

BINS += $(PY_RUNTIME_STAMP)
