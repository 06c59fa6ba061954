"""Container images without a registry or a daemon: docker-archive files from a rootfs tar.

A docker archive (the format of ``docker save``, which ``ctr images import``, ``docker load``
and ``kind load image-archive`` all read) is a tar holding

- ``manifest.json``: ``[{"Config": "<id>.json", "RepoTags": [..], "Layers": [..]}]``
- ``<id>.json``: the image config; ``rootfs.diff_ids`` lists the sha256 of each uncompressed
  layer, and the image id is the sha256 of this file's bytes;
- ``<diff>/layer.tar``: the layer, here the whole root filesystem in one layer.

Everything is written byte-for-byte reproducibly (sorted keys, fixed mtimes, uid/gid 0), so the
same rootfs and settings give the same image id: a content hash a build cache can key on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
# 1970-01-01 keeps the archive reproducible; ``created`` is informational only.
_EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class LayerFile:
    """One regular file of a layer built with :func:`write_layer`."""

    path: str  # inside the image, e.g. "pause" or "usr/local/bin/x"
    content: bytes
    mode: int = 0o755


def image_config(
    diff_id: str,
    *,
    entrypoint: Sequence[str],
    user: str,
    env: Mapping[str, str],
    workdir: str,
    cmd: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    architecture: str = "amd64",
) -> dict[str, Any]:
    """The OCI/Docker image config for a one-layer image (no I/O)."""
    config: dict[str, Any] = {
        "User": user,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Entrypoint": list(entrypoint),
        "WorkingDir": workdir,
    }
    if cmd:
        config["Cmd"] = list(cmd)
    if labels:
        config["Labels"] = dict(sorted(labels.items()))
    return {
        "architecture": architecture,
        "os": "linux",
        "created": _EPOCH,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _EPOCH, "created_by": "sprechzimmer.devcluster.images"}],
    }


def _canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _member(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _directory(name: str) -> tarfile.TarInfo:
    info = _member(name, 0, 0o755)
    info.type = tarfile.DIRTYPE
    return info


def write_docker_archive(
    rootfs_tar: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    repo_tag: str,
    entrypoint: Sequence[str],
    user: str,
    env: Mapping[str, str] | Sequence[str],
    workdir: str,
    cmd: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
) -> str:
    """Write ``out`` as a one-layer docker archive of ``rootfs_tar``; return the image id.

    ``rootfs_tar`` is an uncompressed tar of the root filesystem (as ``mmdebstrap`` or
    :func:`write_layer` write it); it becomes the layer unchanged. ``env`` is a mapping or
    ``KEY=VALUE`` strings. The id is ``sha256:<hex>``, the form ``ctr images ls`` and the
    kubelet report.
    """
    rootfs_tar, out = Path(rootfs_tar), Path(out)
    if not isinstance(env, Mapping):
        env = dict(item.split("=", 1) for item in env)
    diff = sha256_file(rootfs_tar)
    config = _canonical_json(
        image_config(
            f"sha256:{diff}",
            entrypoint=entrypoint,
            user=user,
            env=env,
            workdir=workdir,
            cmd=cmd,
            labels=labels,
        )
    )
    image = hashlib.sha256(config).hexdigest()
    manifest = _canonical_json(
        [{"Config": f"{image}.json", "RepoTags": [repo_tag], "Layers": [f"{diff}/layer.tar"]}]
    )
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_directory(f"{diff}/"))
        with rootfs_tar.open("rb") as layer:
            archive.addfile(_member(f"{diff}/layer.tar", rootfs_tar.stat().st_size), layer)
        archive.addfile(_member(f"{image}.json", len(config)), io.BytesIO(config))
        archive.addfile(_member("manifest.json", len(manifest)), io.BytesIO(manifest))
    tmp.replace(out)
    return f"sha256:{image}"


def write_layer(out: Path, files: Iterable[LayerFile]) -> None:
    """A reproducible rootfs tar holding ``files`` (and their parent directories), root-owned."""
    entries = sorted(files, key=lambda f: f.path)
    directories = sorted(
        {str(parent) for f in entries for parent in Path(f.path).parents if str(parent) != "."}
    )
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as layer:
        for directory in directories:
            layer.addfile(_directory(directory + "/"))
        for f in entries:
            layer.addfile(_member(f.path, len(f.content), f.mode), io.BytesIO(f.content))


def archive_image_id(archive: Path) -> str:
    """The image id of a docker archive written by :func:`write_docker_archive`."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError(f"{archive} has no manifest.json")
        (entry,) = json.load(member)
    return "sha256:" + str(entry["Config"]).removesuffix(".json")
