"""Monitoring a running stack: Prometheus with its rules, a Grafana dashboard, `maas top`.

Everything here reads the stack from the outside, through the metrics endpoints it exports
(Triton's, the gateway's and the stack's own), so it works the same against a remote stack.
"""
