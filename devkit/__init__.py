"""Tooling around the gateway, never loaded by the daemon: the local stack, the demo, the
simulator, the benchmark and the fuzzer (imported lazily by the CLI)."""
