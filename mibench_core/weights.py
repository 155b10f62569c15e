"""External weight files: a registry of the known ones, where to look for
them, sha256 verification, and safe loading (safetensors or
``torch.load(..., weights_only=True)``; never a full pickle).

Lookup order for a known weight file (first existing file wins; it is then
verified, and a file that fails verification is an error, not skipped):

1. an explicit path from the config's top-level ``weights:`` mapping
   (``name: path`` or ``name: {path: ..., sha256: ...}``); when given, it
   is the only place looked at;
2. ``$MIBENCH_WEIGHTS/<filename>``;
3. ``~/.cache/mibench/weights/<filename>``;
4. the torch hub cache ``$TORCH_HOME/hub/checkpoints/<filename>`` (where
   torchvision and pytorch-fid download to; ``TORCH_HOME`` defaults to
   ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``), and for the FaceNet
   files also ``$TORCH_HOME/checkpoints/<filename>`` (facenet-pytorch's cache).
   Model folders (below) are not looked for in the torch caches.

Model folders. A known entry with ``folder=True`` (the vision-language judge)
is a folder as transformers' ``save_pretrained`` writes it. It is verified
through a manifest in the folder, ``SHA256SUMS`` (the format of
``sha256sum``: ``<hex>  <relative path>`` a line): every file of the folder
(outside hidden sub-folders such as ``.cache/``, which transformers never
reads) must be listed and match its digest, and the manifest's own sha256
must equal the digest given in the config (``weights: {vlm-judge: {path:
..., sha256: <sha256 of SHA256SUMS>}}``), or the config says ``unverified:
true``. :func:`write_manifest` writes such a manifest.

Verification: the full sha256 when we know it (each recorded digest says
where it comes from); otherwise a digest the user gives in the config;
otherwise, for torch hub files, the hash prefix that torch hub's own
``check_hash`` verifies (the hex after the last ``-`` of the file name is
the start of the file's sha256). A file that none of these can verify is not
loaded, unless the config says ``unverified: true`` for it (``weights:
{name: {path: ..., unverified: true}}``; for an architecture's
``pretrained_weights``, ``pretrained_unverified: true``): then it is loaded
and its actual sha256 is recorded with the words "not verified".

A torch file whose pickle holds anything but tensors and plain containers
(code, objects) is refused by ``weights_only=True``; :func:`load_state_dict`
says so in its own words (:class:`WeightsError`) and never suggests loading it
another way.

This module imports no torch at import time (the CLI and the plan use it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mibench_core.store import sha256_file


class WeightsError(RuntimeError):
    pass


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    sha256: str | None  # the full digest of the published file, when known
    url: str
    used_by: str
    sha256_prefix: str | None = None  # torch hub convention: the hex in the file name
    digest_source: str = ""  # where the full digest comes from
    extra_cache_dirs: tuple[str, ...] = ()  # subfolders of TORCH_HOME besides hub/checkpoints
    metric: bool = True  # loaded by a metric (its presence enters the ids of metrics that use weights)
    folder: bool = False  # a model folder verified through its SHA256SUMS manifest (see the module docstring)
    provide: str = ""  # how to provide it, when more than downloading the url is needed


def _entries(*files: WeightFile) -> dict[str, WeightFile]:
    return {f.name: f for f in files}


KNOWN: dict[str, WeightFile] = _entries(
    WeightFile(
        "fid-inception",
        "pt_inception-2015-12-05-6726825d.pth",
        # 95,628,359 bytes. The digest is recorded next to pytorch-fid's release
        # URL in several public code bases (found with the code search tool) and
        # begins with the hash prefix in the file name, as torch hub requires.
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "metric fid (pytorch-fid InceptionV3, pool3 features)",
        sha256_prefix="6726825d",
        digest_source="published pytorch-fid release file (recorded by public code bases; prefix 6726825d)",
    ),
    WeightFile(
        "lpips-alex",
        "alexnet-owt-7be5be79.pth",
        # Recorded by public code bases beside the LPIPS head alex.pth digest
        # df73285e..., which we checked against the lpips 0.1.4 wheel.
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "metric lpips (net: alex) backbone: torchvision AlexNet IMAGENET1K_V1",
        sha256_prefix="7be5be79",
        digest_source="torchvision release file (recorded by public code bases; prefix 7be5be79)",
    ),
    WeightFile(
        "lpips-vgg",
        "vgg16-397923af.pth",
        None,
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "metric lpips (net: vgg) backbone: torchvision VGG16 IMAGENET1K_V1",
        sha256_prefix="397923af",
    ),
    WeightFile(
        "lpips-squeeze",
        "squeezenet1_1-b8a52dc0.pth",
        None,
        "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
        "metric lpips (net: squeeze) backbone: torchvision SqueezeNet 1.1 IMAGENET1K_V1",
        sha256_prefix="b8a52dc0",
    ),
    WeightFile(
        "facenet-vggface2",
        "20180402-114759-vggface2.pt",
        # 111,898,327 bytes; recorded next to facenet-pytorch's release URL by
        # several public code bases.
        "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        "metric facenet_distance (pretrained: vggface2): facenet-pytorch InceptionResnetV1",
        digest_source="facenet-pytorch v2.2.9 release file (recorded by public code bases)",
        extra_cache_dirs=("checkpoints",),
    ),
    WeightFile(
        "facenet-casia-webface",
        "20180408-102900-casia-webface.pt",
        None,
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180408-102900-casia-webface.pt",
        "metric facenet_distance (pretrained: casia-webface): facenet-pytorch InceptionResnetV1",
        extra_cache_dirs=("checkpoints",),
    ),
    WeightFile(
        "stylegan2-ada-ffhq",
        "ffhq.pkl",
        # NVIDIA publishes no digest for it; give the one of your copy in the config
        # (weights: {stylegan2-ada-ffhq: {path, sha256}}) to convert it.
        None,
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",
        "prior stylegan2-ada (FFHQ 1024x1024 StyleGAN2-ADA; `mibench weights convert stylegan2-ada-ffhq` "
        "reads it safely and writes safetensors)",
        metric=False,
    ),
    WeightFile(
        "vlm-judge",
        "vlm-judge",
        # No model is prescribed, so no digest can be recorded: the config gives the sha256 of the
        # folder's SHA256SUMS manifest, which lists the sha256 of every file in the folder.
        None,
        "https://huggingface.co/docs/transformers/main/en/model_doc/auto#transformers.AutoModelForImageTextToText",
        "metric vlm_judge: a local instruction-tuned vision-language model (a folder that transformers' "
        "AutoProcessor and AutoModelForImageTextToText load, with safetensors weights)",
        folder=True,
        provide=(
            "save the model folder (e.g. `hf download <model> --local-dir DIR`), write its manifest "
            "(`cd DIR && find . -type f ! -name SHA256SUMS ! -path './.*' -print0 | xargs -0 sha256sum "
            "> SHA256SUMS`), and name both in the config: weights: {vlm-judge: {path: DIR, sha256: "
            "<sha256sum DIR/SHA256SUMS>}}"
        ),
    ),
)

MANIFEST = "SHA256SUMS"


def get(name: str) -> WeightFile:
    try:
        return KNOWN[name]
    except KeyError:
        raise WeightsError(f"unknown weight file {name!r}; known: {', '.join(sorted(KNOWN))}") from None


def torch_home() -> Path:
    """torch.hub's cache root, computed as torch does, without importing torch."""
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "torch"


def user_spec(name: str, user: dict | None) -> tuple[str | None, str | None]:
    """(explicit path, user digest) for ``name`` from the config's ``weights:`` mapping."""
    value = (user or {}).get(name)
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    return value.get("path"), value.get("sha256")


def user_unverified(name: str, user: dict | None) -> bool:
    """Whether the config's ``weights:`` entry for ``name`` says ``unverified: true``."""
    value = (user or {}).get(name)
    return isinstance(value, dict) and value.get("unverified") is True


HUB_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def hub_prefix(path: str | Path) -> str | None:
    """The sha256 prefix a torch hub file name carries (``vgg16_bn-6c64b313.pth`` -> ``6c64b313``), if any."""
    m = HUB_NAME.search(Path(path).name)
    return m.group(1) if m else None


def candidates(name: str, user: dict | None = None) -> list[Path]:
    """Every place a weight file is looked for, in order."""
    entry = get(name)
    explicit, _ = user_spec(name, user)
    out = []
    if explicit:
        out.append(Path(explicit).expanduser())
    env = os.environ.get("MIBENCH_WEIGHTS")
    if env:
        out.append(Path(env).expanduser() / entry.filename)
    out.append(Path.home() / ".cache" / "mibench" / "weights" / entry.filename)
    if entry.folder:
        return out
    out.append(torch_home() / "hub" / "checkpoints" / entry.filename)
    for sub in entry.extra_cache_dirs:
        out.append(torch_home() / sub / entry.filename)
    return out


@dataclass
class Resolved:
    name: str
    path: Path | None  # the file found (None: none found)
    status: str  # ok | missing | mismatch | unverifiable
    detail: str  # how it was verified, or why not
    searched: list[Path] = field(default_factory=list)
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        if self.status == "missing":
            where = ", ".join(str(p) for p in self.searched)
            return f"weights {self.name!r} ({get(self.name).filename}) not found; looked in: {where}"
        return f"weights {self.name!r} at {self.path}: {self.detail}"


def check_digest(entry: WeightFile, actual: str, user_sha256: str | None = None) -> tuple[str, str]:
    """(status, detail) of a file with sha256 ``actual`` against what we know of ``entry``."""
    actual = actual.lower()
    if entry.sha256:
        if actual == entry.sha256.lower():
            return "ok", f"sha256 matches the {entry.digest_source or 'recorded digest'}"
        return "mismatch", f"sha256 {actual} differs from the expected {entry.sha256}"
    if user_sha256:
        if actual == user_sha256.lower():
            return "ok", "sha256 matches the digest given in the config (no published digest is recorded here)"
        return "mismatch", f"sha256 {actual} differs from the digest given in the config {user_sha256}"
    if entry.sha256_prefix:
        if actual.startswith(entry.sha256_prefix.lower()):
            return "ok", f"sha256 starts with {entry.sha256_prefix}, the torch hub hash prefix of its file name"
        return "mismatch", f"sha256 {actual} does not start with the file name's hash prefix {entry.sha256_prefix}"
    return "unverifiable", (
        "no published digest is known; give one in the config (weights: {name: {path, sha256}}), "
        "or load it unchecked with weights: {name: {path, unverified: true}}"
    )


def has_digest(entry: WeightFile) -> bool:
    """Whether a known weight file can be verified without a digest from the config."""
    return bool(entry.sha256 or entry.sha256_prefix)


def _folder_files(folder: Path) -> list[str]:
    """Every file of a model folder outside hidden sub-folders, as paths relative to it (the manifest excluded)."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0].startswith(".") or str(rel) == MANIFEST or path.is_dir():
            continue
        out.append(rel.as_posix())
    return out


def write_manifest(folder: str | Path) -> str:
    """Write ``folder/SHA256SUMS`` (every file's sha256, ``sha256sum`` format); return the manifest's sha256."""
    folder = Path(folder)
    lines = [f"{sha256_file(folder / rel)}  {rel}\n" for rel in _folder_files(folder)]
    (folder / MANIFEST).write_text("".join(lines))
    return sha256_file(folder / MANIFEST)


def read_manifest(path: Path) -> dict[str, str]:
    """{relative path: sha256} of a ``sha256sum``-format manifest; :class:`WeightsError` on a malformed line."""
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
        if m is None:
            raise WeightsError(f"{path}: line {i} is not '<sha256>  <file>': {line[:80]!r}")
        rel = m.group(2).strip()
        out[rel[2:] if rel.startswith("./") else rel] = m.group(1).lower()
    return out


def check_folder(
    folder: Path, user_sha256: str | None, unverified: bool, provide: str = ""
) -> tuple[str, str, str | None]:
    """(status, detail, manifest sha256) of a model folder (see the module docstring)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return "unverifiable", f"no {MANIFEST} manifest in the folder" + (f" ({provide})" if provide else ""), None
    actual = sha256_file(manifest)
    if user_sha256:
        if actual != user_sha256.lower():
            return "mismatch", f"{MANIFEST} sha256 {actual} differs from the digest given in the config", actual
        how = f"{MANIFEST} matches the digest given in the config"
    elif unverified:
        how = f"NOT verified (unverified: true in the config); the sha256 of its {MANIFEST} is {actual}"
    else:
        return (
            "unverifiable",
            (
                f"no digest of its {MANIFEST} is given: give it in the config (weights: {{name: {{path, sha256}}}}), "
                "or load it unchecked with weights: {name: {path, unverified: true}}"
            ),
            actual,
        )
    try:
        listed = read_manifest(manifest)
    except WeightsError as exc:
        return "mismatch", str(exc), actual
    present = _folder_files(folder)
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        return "mismatch", f"files not listed in {MANIFEST}: {', '.join(unlisted[:5])}", actual
    for rel, digest in sorted(listed.items()):
        if not (folder / rel).is_file():
            return "mismatch", f"{rel} is listed in {MANIFEST} but absent", actual
        if sha256_file(folder / rel) != digest:
            return "mismatch", f"{rel}: sha256 differs from its line in {MANIFEST}", actual
    return "ok", f"{how}; all {len(listed)} files match it", actual


def resolve(name: str, user: dict | None = None) -> Resolved:
    """Find and verify a known weight file (see the module docstring for the order)."""
    entry = get(name)
    searched = candidates(name, user)
    explicit, user_sha = user_spec(name, user)
    if entry.folder:
        if explicit and not searched[0].is_dir():
            return Resolved(name, None, "missing", "the configured folder does not exist", searched[:1])
        for path in searched:
            if path.is_dir():
                unverified = bool(explicit) and user_unverified(name, user)
                status, detail, digest = check_folder(path, user_sha, unverified, entry.provide)
                return Resolved(name, path, status, detail, searched, digest)
        return Resolved(name, None, "missing", "not found", searched)
    if explicit and not searched[0].is_file():
        # a path the config names must exist: never silently use another copy instead
        return Resolved(name, None, "missing", "the configured path does not exist", searched[:1])
    for path in searched:
        if path.is_file():
            actual = sha256_file(path)
            status, detail = check_digest(entry, actual, user_sha)
            if status == "unverifiable" and explicit and user_unverified(name, user):
                status, detail = "ok", f"NOT verified (unverified: true in the config); its sha256 is {actual}"
            return Resolved(name, path, status, detail, searched, actual)
    return Resolved(name, None, "missing", "not found", searched)


def require(name: str, user: dict | None = None) -> Path:
    """Path of a verified known weight file; :class:`WeightsError` with the reason otherwise."""
    res = resolve(name, user)
    if not res.ok:
        raise WeightsError(res.reason())
    return res.path  # type: ignore[return-value]


def verify_sha256(path: str | Path, expected: str | None) -> str:
    """Return the file's sha256; raise if ``expected`` is given and differs."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    actual = sha256_file(path)
    if expected and actual.lower() != expected.lower():
        raise WeightsError(f"{path}: sha256 {actual} does not match the expected {expected}")
    return actual


def verify_external(path: str | Path, sha256: str | None = None, unverified: bool = False) -> tuple[str, str]:
    """(sha256, how it was checked) of an external file a config names (e.g. ``pretrained_weights``).

    Checked against ``sha256`` when given, else against the torch hub prefix of its file name; a
    file with neither is refused unless ``unverified`` (then recorded as not verified)."""
    actual = verify_sha256(path, sha256)
    if sha256:
        return actual, "sha256 matches the digest given in the config"
    prefix = hub_prefix(path)
    if prefix:
        if not actual.startswith(prefix):
            raise WeightsError(f"{path}: sha256 {actual} does not start with the file name's hash prefix {prefix}")
        return actual, f"sha256 starts with {prefix}, the torch hub hash prefix of its file name"
    if unverified:
        return actual, "NOT verified (unverified in the config)"
    raise WeightsError(
        f"{path}: no digest to check it against; give its sha256 in the config, or load it unchecked "
        "by saying so (pretrained_unverified: true)"
    )


def load_state_dict(path: str | Path, sha256: str | None = None) -> dict:
    """A state dict from a safetensors file or a torch file of plain tensors, after checking ``sha256``."""
    verify_sha256(path, sha256)
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"{path}: refused: the file carries code or Python objects besides tensors, so it was not loaded "
            "(only plain tensors are read from weight files). Use a safetensors file or a plain state dict "
            "from a source you trust."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_known(name: str, user: dict | None = None) -> tuple[dict, Resolved]:
    """Resolve, verify and safely load a known weight file's state dict."""
    res = resolve(name, user)
    if not res.ok:
        raise WeightsError(res.reason())
    return load_state_dict(res.path, res.sha256), res


def presence_token(user: dict | None = None) -> dict[str, str]:
    """Which copy of each known weight file would be used (path, size, mtime) or ``absent``.

    Cheap (stat calls only). The plan puts it into the ids of metrics that use
    weights, so providing, replacing or removing a weight file recomputes
    exactly those metrics instead of keeping a stale "missing" value.

    A model folder is represented by its manifest, and only when present (an absent folder adds
    nothing, so the ids of configs that never use it do not depend on it).
    """
    out = {}
    for name, entry in KNOWN.items():
        if not entry.metric:
            continue
        if entry.folder:
            found = next((p / MANIFEST for p in candidates(name, user) if p.is_dir()), None)
            if found is not None:
                st = found.stat() if found.is_file() else None
                out[name] = f"{found}:{st.st_size}:{st.st_mtime_ns}" if st else f"{found}:absent"
            continue
        found = next((p for p in candidates(name, user) if p.is_file()), None)
        if found is None:
            out[name] = "absent"
        else:
            st = found.stat()
            out[name] = f"{found}:{st.st_size}:{st.st_mtime_ns}"
    return out
