"""The platforms a workload's image offers, read from its registry (`rackform place --live`): what placement checks
against each node's architecture (rackform.placement.state.ImagePlatforms).

An image in a private ECR registry (`<account>.dkr.ecr.<region>.amazonaws.com/...`) is read with ECR's
BatchGetImage, any other through the OCI distribution API anonymously (public.ecr.aws, nvcr.io, Docker Hub, ghcr.io:
a registry that answers 401 names the token service to ask, as Docker's token authentication says). A manifest
list or OCI image index names its platforms; a single manifest's platform is its config's. Requests per image: one
manifest, plus one token where the registry asks for it, plus one config blob for a single-platform image.

Whatever cannot be read (no network, a private registry, a denied call, an unexpected answer) is left out of the
mapping with a note: "not read", never a guess.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError

from .. import aws

# Docker manifest list and OCI image index (several platforms), Docker and OCI image manifest (one): ECR returns a
# stored manifest list only to a client that accepts it, else converts it
# (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-manifest-formats.html; manifest lists in ECR:
# https://aws.amazon.com/about-aws/whats-new/2020/05/ecr-now-supports-manifest-lists-for-multi-architecture-images/;
# the OCI distribution and image specs: https://github.com/opencontainers/distribution-spec/blob/main/spec.md,
# https://github.com/opencontainers/image-spec/blob/main/image-index.md).
LIST_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")
ECR_REGISTRY = re.compile(r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT_S = 10
# The attestation manifests BuildKit adds to an index say platform unknown/unknown: not a platform the image runs on.
UNKNOWN = "unknown/unknown"


class ImageError(Exception):
    """Why an image's platforms were not read, in a few words."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    reference: str  # a tag or a digest (sha256:...)

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        """`[registry/]repository[:tag][@digest]`, as docker reads it: the first part is a registry when it has a dot
        or a port or is localhost; Docker Hub's official images live under library/."""
        name, _, digest = image.partition("@")
        first, _, rest = name.partition("/")
        registry = first if rest and ("." in first or ":" in first or first == "localhost") else ""
        path = rest if registry else name
        repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
        if not repository:
            raise ImageError(f"not an image reference: {image!r}")
        if not registry:
            registry, repository = DOCKER_HUB, repository if "/" in repository else f"library/{repository}"
        return cls(registry, repository, digest or tag or "latest")


def platforms_of(manifest: Mapping[str, object], media_type: str | None,
                 config: Callable[[str], Mapping[str, object]]) -> frozenset[str]:
    """os/architecture of each image a manifest list names, or of a single manifest's config (fetched by digest)."""
    kind = media_type or str(manifest.get("mediaType") or "")
    entries = manifest.get("manifests")
    if kind in LIST_TYPES or isinstance(entries, list):
        found = {f"{p.get('os')}/{p.get('architecture')}" for e in (entries if isinstance(entries, list) else [])
                 if isinstance(e, dict) and isinstance(p := e.get("platform"), dict)} - {UNKNOWN}
        if not found:
            raise ImageError("its manifest list names no platform")
        return frozenset(found)
    descriptor = manifest.get("config")
    if not isinstance(descriptor, dict) or not isinstance(digest := descriptor.get("digest"), str):
        raise ImageError(f"an answer that is not a manifest ({kind or 'no media type'})")
    blob = config(digest)
    if not isinstance(blob.get("os"), str) or not isinstance(blob.get("architecture"), str):
        raise ImageError("its config names no platform")
    return frozenset({f"{blob['os']}/{blob['architecture']}"})


# --- ECR --------------------------------------------------------------------------------------------------------

def _ecr(ref: ImageRef, account: str, ecr: aws.BotoClient, fetch: Callable[[str], bytes]) -> frozenset[str]:
    ident = {"imageDigest": ref.reference} if ref.reference.startswith("sha256:") else {"imageTag": ref.reference}
    try:
        # BatchGetImage: the manifest as stored when its media type is accepted
        # (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchGetImage.html)
        got = ecr.batch_get_image(registryId=account, repositoryName=ref.repository, imageIds=[ident],
                                  acceptedMediaTypes=[*LIST_TYPES, *MANIFEST_TYPES])
    except (ClientError, BotoCoreError) as e:
        raise ImageError(f"ECR: {aws.error_code(e) or type(e).__name__}") from None
    if not got.get("images"):
        why = next((f.get("failureCode") for f in got.get("failures") or []), None)
        raise ImageError(f"ECR: {why or 'no such image'}")
    image = got["images"][0]

    def config(digest: str) -> Mapping[str, object]:
        try:
            # a layer's (or config's) download URL, a presigned S3 URL
            # (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetDownloadUrlForLayer.html)
            url = ecr.get_download_url_for_layer(registryId=account, repositoryName=ref.repository,
                                                 layerDigest=digest)["downloadUrl"]
        except (ClientError, BotoCoreError) as e:
            raise ImageError(f"ECR: {aws.error_code(e) or type(e).__name__}") from None
        return _json(fetch(url))

    return platforms_of(_json(image["imageManifest"].encode()), image.get("imageManifestMediaType"), config)


# --- the OCI distribution API -------------------------------------------------------------------------------------

Opener = Callable[[urllib.request.Request], bytes]


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed only where a first request may go (a registry sends blobs to its CDN over https)."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if not _allowed(newurl):
            raise ImageError("a redirect to a URL that is not https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(request: urllib.request.Request) -> bytes:
    if not _allowed(request.full_url):
        raise ImageError("a URL that is not https")
    with urllib.request.build_opener(_Redirects).open(request, timeout=TIMEOUT_S) as answer:
        body: bytes = answer.read(4 << 20)
        return body


def _json(body: bytes) -> Mapping[str, object]:
    try:
        found = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ImageError("an answer that is not JSON") from None
    if not isinstance(found, dict):
        raise ImageError("an answer that is not a JSON object")
    return found


def _challenge(header: str) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` challenge."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header)) if header.lower().startswith("bearer ") else {}


LOCAL_HOSTS = ("localhost", "127.0.0.1")


def _allowed(url: str) -> bool:
    """https, or plain http to this machine only (a registry under test, or a local mirror, as docker allows)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)


def _registry(ref: ImageRef, opener: Opener) -> frozenset[str]:
    scheme = "http" if ref.registry.split(":")[0] in LOCAL_HOSTS else "https"
    base = f"{scheme}://{ref.registry}/v2/{ref.repository}"
    token: list[str] = []

    def get(url: str, accept: str) -> bytes:
        headers = {"Accept": accept, **({"Authorization": f"Bearer {token[0]}"} if token else {})}
        try:
            return opener(urllib.request.Request(url, headers=headers))
        except urllib.error.HTTPError as e:
            params = _challenge(e.headers.get("WWW-Authenticate", "")) if e.code == 401 and not token else {}
            if "realm" not in params:
                raise ImageError(f"{ref.registry} answered HTTP {e.code}") from None
            if not _allowed(params["realm"]):
                raise ImageError(f"{ref.registry} named a token service that is not https") from None
            # Anonymous token for the scope the registry named (https://distribution.github.io/distribution/spec/
            # auth/token/): public images need no credentials.
            query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
            found = _json(opener(urllib.request.Request(f"{params['realm']}?{query}")))
            if not isinstance(value := found.get("token") or found.get("access_token"), str):
                raise ImageError(f"{ref.registry} gave no token") from None
            token.append(value)
            return get(url, accept)

    manifest = _json(get(f"{base}/manifests/{ref.reference}", ", ".join((*LIST_TYPES, *MANIFEST_TYPES))))
    return platforms_of(manifest, None, lambda digest: _json(get(f"{base}/blobs/{digest}", "*/*")))


# --- all of a run's images ----------------------------------------------------------------------------------------

def image_platforms(images: Iterable[str], *, ecr_for: Callable[[str], aws.BotoClient], opener: Opener = _open
                    ) -> tuple[dict[str, frozenset[str]], list[str]]:
    """Each image's platforms as its registry lists them, by the reference as written, and a note for each image
    not read (left out: the policy then checks the workload's own `platform`, or says it could not).
    `ecr_for(region)`: an ECR client in that Region."""
    found: dict[str, frozenset[str]] = {}
    notes: list[str] = []
    for image in sorted(set(images)):
        try:
            ref = ImageRef.parse(image)
            if m := ECR_REGISTRY.fullmatch(ref.registry):
                found[image] = _ecr(ref, m[1], ecr_for(m[2]), lambda url: opener(urllib.request.Request(url)))
            else:
                found[image] = _registry(ref, opener)
        except ImageError as e:
            notes.append(f"image {image}: platforms not read ({e})")
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            notes.append(f"image {image}: platforms not read ({getattr(e, 'reason', e)})")
    return found, notes
