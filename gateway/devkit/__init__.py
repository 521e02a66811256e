"""Tooling around the gateway: fuzzing, and the helpers the benchmark and the fuzzer share."""
