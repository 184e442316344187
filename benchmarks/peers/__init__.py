"""The peers maas is measured against: BentoML, Ray Serve and TorchServe serving the same artifacts.

`work` is what every peer computes (the served artifact, run by the serving adapter's own core);
`wire` is how a caller talks to each peer; `bentoml_service`, `ray_app` and
`torchserve_handler` are the peers' own service code, written as each one's documentation
recommends; `launch` starts and stops them one at a time.
"""
