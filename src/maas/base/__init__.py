"""The torch-free base of maas: errors, the Triton contract, runtimes, served-model cores, facts.

Everything above (export, serve, clients, then benchmarks, then the CLI) may import it; it
imports nothing above itself (tests/unit/test_layers.py checks).
"""
