# `make bench`: measure what users feel, one table (docs/PERFORMANCE.md says how to read it).
# Included from the Makefile, which defines $(STAMP) and $(BIN).
.PHONY: bench bench-smoke

bench: $(STAMP)
	$(BIN)/python -m bench

# every benchmark at tiny sizes, in seconds (what tests/bench/test_bench_smoke.py runs)
bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke
