"""The docker-archive writer: layout, digests and reproducibility (no daemon, no cluster).

That ``ctr images import`` accepts the archives and runs them is shown on the real node
(``test_realnode.py``).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest
from sprechzimmer.devcluster.images import (
    LayerFile,
    archive_image_id,
    write_docker_archive,
    write_layer,
)

pytestmark = pytest.mark.unit


def _write(rootfs: Path, out: Path, user: str = "65532:65532") -> str:
    return write_docker_archive(
        rootfs,
        out,
        repo_tag="sprechzimmer.local/demo:1",
        entrypoint=["/bin/demo", "--serve"],
        user=user,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        workdir="/srv",
    )


def _rootfs(tmp_path: Path, payload: bytes = b"\x7fELF demo") -> Path:
    rootfs = tmp_path / "rootfs.tar"
    write_layer(rootfs, [LayerFile("bin/demo", payload), LayerFile("etc/demo.conf", b"x", 0o644)])
    return rootfs


def _read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_archive_has_manifest_config_and_layer_whose_digests_agree(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    image_id = _write(rootfs, tmp_path / "demo.tar")

    (entry,) = json.loads(_read(tmp_path / "demo.tar", "manifest.json"))
    assert entry["RepoTags"] == ["sprechzimmer.local/demo:1"]
    config_bytes = _read(tmp_path / "demo.tar", entry["Config"])
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert archive_image_id(tmp_path / "demo.tar") == image_id

    (layer_name,) = entry["Layers"]
    layer = _read(tmp_path / "demo.tar", layer_name)
    assert layer == rootfs.read_bytes()
    config = json.loads(config_bytes)
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
    }
    assert config["os"] == "linux"
    assert config["config"] == {
        "User": "65532:65532",
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "Entrypoint": ["/bin/demo", "--serve"],
        "WorkingDir": "/srv",
    }


def test_same_input_gives_the_same_bytes_and_id(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ids = [_write(_rootfs(d), d / "x.tar") for d in (tmp_path / "a", tmp_path / "b")]
    assert ids[0] == ids[1]
    assert (tmp_path / "a" / "x.tar").read_bytes() == (tmp_path / "b" / "x.tar").read_bytes()


def test_a_changed_file_or_setting_changes_the_id(tmp_path: Path) -> None:
    base = _write(_rootfs(tmp_path), tmp_path / "x.tar")
    other_file = _write(_rootfs(tmp_path, b"\x7fELF other"), tmp_path / "y.tar")
    other_user = _write(_rootfs(tmp_path), tmp_path / "z.tar", user="0")
    assert len({base, other_file, other_user}) == 3


def test_layer_is_root_owned_with_parent_directories_and_modes(tmp_path: Path) -> None:
    with tarfile.open(_rootfs(tmp_path)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"bin", "etc", "bin/demo", "etc/demo.conf"}
    assert members["bin"].isdir()
    assert members["bin/demo"].mode == 0o755
    assert members["etc/demo.conf"].mode == 0o644
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members.values())


def test_paths_may_be_strings_and_env_key_value_strings(tmp_path: Path) -> None:
    rootfs = _rootfs(tmp_path)
    as_mapping = _write(rootfs, tmp_path / "a.tar")
    as_strings = write_docker_archive(
        str(rootfs),
        str(tmp_path / "b.tar"),
        repo_tag="sprechzimmer.local/demo:1",
        entrypoint=["/bin/demo", "--serve"],
        user="65532:65532",
        env=["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        workdir="/srv",
    )
    assert as_strings == as_mapping
