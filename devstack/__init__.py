"""The whole service as real local processes on loopback: Redis, the Belvo sandbox, web and worker.

Used by `make dev` (python -m devstack), the test suite and the benchmarks, so all three run the
same commands the Procfile does.
"""
