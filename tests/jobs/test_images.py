"""An image's platforms read from its registry (rackform/jobs/images.py): the OCI distribution API of a registry
served on 127.0.0.1 (token challenge, manifest list, single manifest and its config), ECR through botocore's
Stubber, and everything that cannot be read left out with a note, never guessed."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber

from rackform.jobs.images import DOCKER_HUB, ImageRef, image_platforms

INDEX = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"digest": "sha256:a1", "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:a2", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"digest": "sha256:a3", "platform": {"os": "unknown", "architecture": "unknown"}}]}  # a BuildKit attestation
SINGLE = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "config": {"digest": "sha256:c0", "mediaType": "application/vnd.docker.container.image.v1+json"},
          "layers": []}
CONFIG = {"os": "linux", "architecture": "arm64", "rootfs": {"type": "layers", "diff_ids": []}}


@pytest.fixture
def registry() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A registry that wants an anonymous Bearer token, as public.ecr.aws and nvcr.io do; (host:port, requests)."""
    seen: list[dict[str, str]] = []

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self, code: int, body: object, **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            seen.append({"path": self.path, "accept": self.headers.get("Accept", ""),
                         "auth": self.headers.get("Authorization", "")})
            host = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            if self.path.startswith("/token?"):
                return self.answer(200, {"token": "t0k"})
            if self.path == "/presigned/c0":  # what ECR's download URL is: presigned, no token
                return self.answer(200, CONFIG)
            if self.path.startswith("/v2/team/lure/"):  # a token service on another host, over plain http
                return self.answer(401, {}, WWW_Authenticate='Bearer realm="http://169.254.169.254/latest/token"')
            if self.headers.get("Authorization") != "Bearer t0k":
                return self.answer(401, {"errors": []}, WWW_Authenticate=(
                    f'Bearer realm="http://{host}/token",service="{host}",scope="repository:x:pull"'))
            if self.path == "/v2/team/moved/manifests/1.0":  # to the same registry: followed
                return self.answer(307, {}, Location=f"http://{host}/v2/team/multi/manifests/1.0")
            if self.path == "/v2/team/away/manifests/1.0":  # to another host over plain http: not followed
                return self.answer(307, {}, Location="http://169.254.169.254/latest/meta-data/")
            pages = {"/v2/team/multi/manifests/1.0": INDEX, "/v2/team/single/manifests/1.0": SINGLE,
                     "/v2/team/single/blobs/sha256:c0": CONFIG}
            if self.path in pages:
                return self.answer(200, pages[self.path])
            return self.answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def no_ecr(region: str):
    raise AssertionError("no ECR image here")


def test_image_references_are_read_as_docker_reads_them():
    assert ImageRef.parse("ubuntu") == ImageRef(DOCKER_HUB, "library/ubuntu", "latest")
    assert ImageRef.parse("pytorch/pytorch:2.5.1") == ImageRef(DOCKER_HUB, "pytorch/pytorch", "2.5.1")
    assert ImageRef.parse("nvcr.io/nvidia/tritonserver:25.01-py3") == \
        ImageRef("nvcr.io", "nvidia/tritonserver", "25.01-py3")
    assert ImageRef.parse("localhost:5000/a/b@sha256:abc") == ImageRef("localhost:5000", "a/b", "sha256:abc")
    assert ImageRef.parse("123456789012.dkr.ecr.us-west-2.amazonaws.com/train:v1") == \
        ImageRef("123456789012.dkr.ecr.us-west-2.amazonaws.com", "train", "v1")


def test_a_public_registry_is_read_with_an_anonymous_token(registry):
    host, seen = registry
    multi, single, missing = f"{host}/team/multi:1.0", f"{host}/team/single:1.0", f"{host}/team/gone:1.0"
    lure, moved, away = f"{host}/team/lure:1.0", f"{host}/team/moved:1.0", f"{host}/team/away:1.0"
    found, notes = image_platforms([multi, single, missing, lure, moved, away], ecr_for=no_ecr)
    # the manifest list's platforms, less the attestation's unknown/unknown; the single image's from its config
    both = frozenset({"linux/amd64", "linux/arm64"})
    assert found == {multi: both, single: frozenset({"linux/arm64"}), moved: both}
    assert notes == [f"image {away}: platforms not read (a redirect to a URL that is not https)",
                     f"image {missing}: platforms not read ({host} answered HTTP 404)",
                     f"image {lure}: platforms not read ({host} named a token service that is not https)"]
    manifests = [r for r in seen if "/manifests/" in r["path"] and r["auth"]]
    assert manifests and all("application/vnd.oci.image.index.v1+json" in r["accept"] and
                             "application/vnd.docker.distribution.manifest.list.v2+json" in r["accept"]
                             for r in manifests)


def test_an_unreachable_registry_is_not_read_and_not_guessed():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = f"127.0.0.1:{port}/team/multi:1.0"
    found, notes = image_platforms([image], ecr_for=no_ecr)
    assert found == {} and len(notes) == 1 and notes[0].startswith(f"image {image}: platforms not read (")


def test_an_ecr_image_is_read_with_batch_get_image(registry):
    host, _ = registry
    ecr = boto3.client("ecr", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    repo = "123456789012.dkr.ecr.us-west-2.amazonaws.com/train"
    accepted = ["application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json"]
    stub = Stubber(ecr)
    stub.add_response("batch_get_image", {"images": [{"imageManifest": json.dumps(INDEX),
                                                       "imageManifestMediaType": INDEX["mediaType"]}],
                                          "failures": []},
                      {"registryId": "123456789012", "repositoryName": "train", "imageIds": [{"imageTag": "v1"}],
                       "acceptedMediaTypes": accepted})
    stub.add_response("batch_get_image", {"images": [{"imageManifest": json.dumps(SINGLE)}], "failures": []})
    stub.add_response("get_download_url_for_layer", {"downloadUrl": f"http://{host}/presigned/c0",
                                                     "layerDigest": "sha256:c0"},
                      {"registryId": "123456789012", "repositoryName": "train", "layerDigest": "sha256:c0"})
    stub.add_response("batch_get_image", {"images": [], "failures": [
        {"imageId": {"imageTag": "v3"}, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"}]})
    regions: list[str] = []

    def ecr_for(region: str):
        regions.append(region)
        return ecr

    with stub:
        found, notes = image_platforms([f"{repo}:v1", f"{repo}:v2", f"{repo}:v3"], ecr_for=ecr_for)
    assert found == {f"{repo}:v1": frozenset({"linux/amd64", "linux/arm64"}), f"{repo}:v2": frozenset({"linux/arm64"})}
    assert notes == [f"image {repo}:v3: platforms not read (ECR: ImageNotFound)"]
    assert set(regions) == {"us-west-2"}


def test_place_live_checks_each_tier_against_the_platforms_the_registry_lists(registry, monkeypatch, tmp_path,
                                                                               capsys):
    """`rackform place --live`: the image says linux/arm64 only, so the x86 GPU nodes are refused by what the
    registry lists, not by a guess; without --live the image is not read and the platform is unknown."""
    import boto3

    from rackform.cli import main
    from rackform.pipeline import load_plan

    from tests.conftest import deploy_to_moto, moto_aws

    host, _ = registry
    workload = tmp_path / "w.yaml"
    workload.write_text(f"name: arm-only\nclass: general\ntiers:\n  gpu:\n    image: {host}/team/single:1.0\n"
                        "    command: [run]\n")
    with moto_aws(monkeypatch, "us-east-1"):
        deploy_to_moto(load_plan("examples/demo.yaml"), monkeypatch, s3=boto3.client("s3", region_name="us-east-1"),
                       batch=boto3.client("batch", region_name="us-east-1"))
        assert main(["place", str(workload), "--spec", "examples/demo.yaml", "--live", "--json"]) == 1
        [decision] = json.loads(capsys.readouterr().out)["decisions"]
        [gpu] = decision["candidates"]
        assert decision["outcome"] == "unplaced" and "linux/arm64" in gpu["refused"] and "linux/amd64" in \
            gpu["refused"]
        assert main(["place", str(workload), "--spec", "examples/demo.yaml", "--json"]) == 0
        [decision] = json.loads(capsys.readouterr().out)["decisions"]
        assert decision["outcome"] == "placed"
