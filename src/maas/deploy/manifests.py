"""Kubernetes objects as plain dicts, and the YAML they are written as."""

from __future__ import annotations

from typing import Any

import yaml

from .options import DeployOptions

Manifest = dict[str, Any]
HEADER = "# Written by `maas deploy render`; edit the options, not this file.\n"


def metadata(options: DeployOptions, name: str, component: str) -> dict[str, Any]:
    """An object's metadata: its name, the namespace, and the component's labels."""
    labels = options.labels(component) | {"app.kubernetes.io/part-of": "maas"}
    return {"name": name, "namespace": options.namespace, "labels": labels}


def manifest(api_version: str, kind: str, meta: dict[str, Any], **body: Any) -> Manifest:
    """One object: apiVersion, kind, metadata, then its body in the order given."""
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


class ManifestDumper(yaml.SafeDumper):  # type: ignore[misc]
    """Safe YAML without anchors; multi-line strings (dashboard, locustfile) as literal blocks.

    Objects shared between manifests (labels, probes) are written out in full each time.
    """

    def ignore_aliases(self, data: Any) -> bool:
        """Never write an anchor and alias: every object reads on its own."""
        return True


def represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    """A string; one of several lines as a `|` block."""
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


ManifestDumper.add_representer(str, represent_text)


def to_yaml(document: dict[str, Any]) -> str:
    """One document as YAML, keys in the order written, long lines kept whole."""
    return str(yaml.dump(document, Dumper=ManifestDumper, sort_keys=False, width=10_000))


def file_text(documents: list[Manifest]) -> str:
    """A manifest file: the header, then the documents separated by `---`."""
    return HEADER + "---\n".join(to_yaml(document) for document in documents)
