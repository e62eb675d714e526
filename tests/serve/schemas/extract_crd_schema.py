"""Extract a CustomResourceDefinition's published OpenAPI schema into the compact form that
tests/serve/test_serve_deploy.py validates the deployment manifests against (no network
at test time):

    python tests/serve/schemas/extract_crd_schema.py CRD.yaml OUT.json.gz [SOURCE]

CRD.yaml is a CRD as its project publishes it (KServe: config/crd/full/ in its repository,
also the kserve-crd Helm chart); OUT.json.gz gets {"apiVersion", "kind", "source",
"openAPIV3Schema"} of the CRD's storage version, as minified, gzipped JSON (the schemas are
mostly the Kubernetes pod and container specs, repeated: 0.6 MB of JSON, 22 KB gzipped).
SOURCE says where CRD.yaml came from (a repository and commit), for the README beside it.
"""

from __future__ import annotations

import gzip
import json
import sys

import yaml


def extract(crd_path: str, out_path: str, source: str = "") -> None:
    """Write the storage version's schema of the CRD at `crd_path` to `out_path`."""
    with open(crd_path, encoding="utf-8") as file:
        crd = yaml.safe_load(file)
    if crd.get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"{crd_path}: not a CustomResourceDefinition (kind "
                         f"{crd.get('kind')!r})")
    spec = crd["spec"]
    (version,) = [v for v in spec["versions"] if v.get("storage")]
    data = {"apiVersion": f"{spec['group']}/{version['name']}", "kind": spec["names"]["kind"],
            "source": source, "openAPIV3Schema": version["schema"]["openAPIV3Schema"]}
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    with open(out_path, "wb") as out:
        # mtime 0: the same input gives the same bytes
        out.write(gzip.compress(text, compresslevel=9, mtime=0))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    extract(*sys.argv[1:])
