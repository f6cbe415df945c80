"""Build an OCI image-layout tarball (one layer) from a rootfs directory, for `ctr image import`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path


def _blob(tar: tarfile.TarFile, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build(rootfs: Path, out: Path, ref: str, cmd: list[str] | None = None) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as layer:
        layer.add(str(rootfs), arcname=".")
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    gz = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
    config = {"architecture": "amd64" if __import__("platform").machine() == "x86_64" else "arm64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": cmd or ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    with tarfile.open(out, "w") as tar:
        layer_desc = _blob(tar, gz) | {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
        config_desc = _blob(tar, json.dumps(config).encode()) | {"mediaType": "application/vnd.oci.image.config.v1+json"}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer_desc]}
        manifest_desc = _blob(tar, json.dumps(manifest).encode()) | {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "annotations": {"org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                            "io.containerd.image.name": ref}}
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                           ("index.json", json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
