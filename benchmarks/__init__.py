"""jaxrnn's benchmarks (not part of the installed package): ``python -m benchmarks.bptt``."""
