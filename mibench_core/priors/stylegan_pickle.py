"""Safe conversion of NVIDIA's StyleGAN2-ADA network pickles to our generator and safetensors.

NVIDIA publishes StyleGAN2-ADA networks (e.g. ``ffhq.pkl``) as Python
pickles of ``dnnlib`` / ``torch_utils`` objects: every network module is a
``torch_utils.persistence`` class, pickled as a call
``_reconstruct_persistent_obj(meta)`` where ``meta`` carries the module's
*source code* (``module_src``, which NVIDIA's loader executes), its class
name and its state (the ``nn.Module.__dict__``: parameters, buffers,
sub-modules, constructor arguments). Loading such a file with ``pickle``
runs that code. We never do.

:class:`RestrictedUnpickler` resolves only these globals, each to code of
this module or to torch's own tensor rebuilding:

* tensors and storages: ``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter`` (with state), ``torch._tensor._rebuild_from_type_v2``
  (for ``torch.Tensor`` / ``torch.nn.Parameter`` only) and
  ``torch.storage._load_from_bytes``, whose payload is itself read with
  ``torch.load(weights_only=True)``;
* plain containers: ``collections.OrderedDict``, ``set``, ``frozenset``;
* inert stand-ins that only record their arguments: the persistence
  reconstructor (class name and state are kept; ``module_src`` is dropped
  unread), ``dnnlib.util.EasyDict`` (a plain dict), and NumPy scalars,
  dtypes and arrays (numbers NVIDIA's modules keep as attributes, such as
  ``weight_gain``; scalars are decoded with :mod:`struct`, arrays are kept
  as bytes).

Any other global (``os.system``, ``builtins.eval``, a torch module class,
...) raises :class:`UnsafePickleError` naming it, before anything is
called. A tensor record whose size, stride and offset reach past its
storage is refused too (torch would grow the storage to fit, so a small
file could make the reader allocate any amount of memory).
:func:`read_networks` then walks the stand-ins of ``G_ema`` (and
``D``), collects their parameters and buffers under their dotted names
(NVIDIA's ``state_dict`` names), checks the architecture recorded in the
constructor arguments, and loads them into
:class:`mibench_core.priors.stylegan.Generator` / ``Discriminator`` with
``strict=True``. :func:`convert` writes the result as one safetensors file
(keys ``G.*`` and ``D.*``, the architecture in its metadata) and returns its
sha256, which it also writes beside it (``<file>.sha256``).
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import torch

FORMAT = "mibench-stylegan2"
# known weight files (mibench_core.weights.KNOWN) that are StyleGAN2-ADA network pickles
CONVERTIBLE = ("stylegan2-ada-ffhq",)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references something other than tensors, storages or plain containers."""


class ConversionError(ValueError):
    """The pickle is safe but not a network we can map onto our generator."""


# ------------------------------------------------------------------ inert stand-ins


class PersistentStub:
    """What a ``torch_utils.persistence`` object becomes: its class name and state, nothing run."""

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state

    def __repr__(self) -> str:
        return f"PersistentStub({self.class_name})"


class InertDict(dict):
    """``dnnlib.util.EasyDict``: a plain dict."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


class NumpyStub:
    """A NumPy dtype or array, kept as the raw arguments and state pickle gives it."""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    @property
    def descr(self) -> str | None:
        return self.args[0] if self.args and isinstance(self.args[0], str) else None


_SCALAR_FORMATS = {"f8": "<d", "f4": "<f", "i8": "<q", "i4": "<i", "u8": "<Q", "u4": "<I", "b1": "<?"}


def _numpy_scalar(dtype, data=None):
    """``numpy.core.multiarray.scalar(dtype, bytes)`` decoded without NumPy (little-endian numbers)."""
    if isinstance(dtype, NumpyStub) and isinstance(data, bytes):
        fmt = _SCALAR_FORMATS.get(dtype.descr or "")
        endian = dtype.state[1] if isinstance(dtype.state, tuple) and len(dtype.state) > 1 else "<"
        if fmt is not None and endian in ("<", "|", "=") and len(data) == struct.calcsize(fmt):
            return struct.unpack(fmt, data)[0]
    return NumpyStub(dtype, data)


def _reconstruct_persistent(meta):
    if not (isinstance(meta, dict) and meta.get("type") == "class" and isinstance(meta.get("class_name"), str)):
        raise UnsafePickleError("a torch_utils.persistence record without a class name")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent {meta['class_name']}: its state is not a dict")
    return PersistentStub(meta["class_name"], state)


def _load_storage(data: bytes):
    if not isinstance(data, bytes):
        raise UnsafePickleError("a storage whose payload is not bytes")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _check_extent(storage, offset, size, stride) -> None:
    """Refuse a tensor record that reaches past its storage (torch would grow the storage to fit:
    a file could make the reader allocate any amount of memory)."""
    ints = [offset, *size, *stride] if isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) else None
    if ints is None or len(size) != len(stride) or any(type(v) is not int for v in ints):
        raise UnsafePickleError("a tensor record whose offset, size or stride are not integers")
    if offset < 0 or any(v < 0 for v in size) or any(v < 0 for v in stride):
        raise UnsafePickleError("a tensor record with a negative offset, size or stride into its storage")
    if isinstance(storage, torch.storage.TypedStorage):
        capacity = storage.size()  # elements
    else:
        capacity = storage.nbytes()  # an untyped storage holds bytes (uint8 elements)
    if any(v == 0 for v in size):
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= capacity:
        raise UnsafePickleError(
            f"a tensor record reaching element {last} of a storage of {capacity} elements (size {tuple(size)}, "
            f"stride {tuple(stride)}, offset {offset})"
        )


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("a tensor whose storage did not come from a storage record")
    _check_extent(storage, offset, size, stride)
    return torch._utils._rebuild_tensor_v2(
        storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()
    )


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("a parameter whose data is not a tensor")
    return data.detach()


_TENSOR_TYPES = object()  # stands for torch.Tensor / torch.nn.Parameter: only compared, never called


def _rebuild_from_type(func, new_type, args, state=None):
    if new_type is not _TENSOR_TYPES or func not in (_rebuild_tensor, _rebuild_parameter):
        raise UnsafePickleError("a tensor subclass record for something other than a tensor")
    return func(*args)


def _reconstructor(cls, base, state=None):
    """copyreg._reconstructor (protocol 0/1 objects), for the inert stand-ins only."""
    if cls is not InertDict or base not in (dict, None):
        raise UnsafePickleError("copyreg._reconstructor for a class other than an EasyDict")
    return InertDict() if state is None else InertDict(state)


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): _TENSOR_TYPES,
    ("torch.nn.parameter", "Parameter"): _TENSOR_TYPES,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
    ("dnnlib.util", "EasyDict"): InertDict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("numpy", "dtype"): NumpyStub,
    ("numpy", "ndarray"): NumpyStub,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): NumpyStub,
    ("numpy._core.multiarray", "_reconstruct"): NumpyStub,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED` globals (see the module docstring); refuses everything else."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load {module}.{name}: the pickle may only contain tensors, storages and plain "
                "containers (and StyleGAN2-ADA's persistence records, which are read as data, never run)"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refused persistent id {pid!r}: not a plain pickle of tensors")


def load_restricted(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh).load()


# ------------------------------------------------------------------ from stand-ins to our networks


def flat_state(stub: PersistentStub, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a stand-in module tree under their dotted names."""
    state = stub.state
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise ConversionError(f"{prefix}{name} is not a tensor")
            out[prefix + name] = value.detach().float().contiguous()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentStub):
            raise ConversionError(f"sub-module {prefix}{name} is not a StyleGAN2-ADA network module")
        out.update(flat_state(child, f"{prefix}{name}."))
    return out


def _kwargs(stub: PersistentStub, positional: tuple[str, ...]) -> dict:
    args = stub.state.get("_init_args") or ()
    kwargs = dict(stub.state.get("_init_kwargs") or {})
    kwargs.update(dict(zip(positional, args)))
    return kwargs


def _require(value, expected, what: str) -> None:
    if value != expected:
        raise ConversionError(f"unsupported StyleGAN2-ADA network: {what} is {value!r} (only {expected!r} is mapped)")


def generator_kwargs(stub: PersistentStub) -> dict:
    """Our :class:`~mibench_core.priors.stylegan.Generator` arguments from NVIDIA's Generator record."""
    if stub.class_name != "Generator":
        raise ConversionError(f"G_ema is a {stub.class_name!r}, not a StyleGAN2-ADA Generator")
    kw = _kwargs(stub, ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
    _require(kw.get("c_dim", 0), 0, "the conditioning dimension c_dim")
    m, s = dict(kw.get("mapping_kwargs") or {}), dict(kw.get("synthesis_kwargs") or {})
    _require(m.get("activation", "lrelu"), "lrelu", "the mapping activation")
    _require(m.get("layer_features") in (None, kw["w_dim"]), True, "mapping layer_features == w_dim")
    _require(s.get("architecture", "skip"), "skip", "the synthesis architecture")
    _require(list(s.get("resample_filter", [1, 3, 3, 1])), [1, 3, 3, 1], "the resampling filter")
    _require(s.get("activation", "lrelu"), "lrelu", "the synthesis activation")
    _require(s.get("use_noise", True), True, "use_noise")
    return {
        "z_dim": int(kw["z_dim"]),
        "w_dim": int(kw["w_dim"]),
        "img_resolution": int(kw["img_resolution"]),
        "img_channels": int(kw["img_channels"]),
        "mapping_layers": int(m.get("num_layers", 8)),
        "mapping_lr_multiplier": float(m.get("lr_multiplier", 0.01)),
        "channel_base": int(s.get("channel_base", 32768)),
        "channel_max": int(s.get("channel_max", 512)),
        "conv_clamp": None if s.get("conv_clamp") is None else float(s["conv_clamp"]),
    }


def discriminator_kwargs(stub: PersistentStub) -> dict:
    if stub.class_name != "Discriminator":
        raise ConversionError(f"D is a {stub.class_name!r}, not a StyleGAN2-ADA Discriminator")
    kw = _kwargs(stub, ("c_dim", "img_resolution", "img_channels"))
    _require(kw.get("c_dim", 0), 0, "the discriminator's c_dim")
    _require(kw.get("architecture", "resnet"), "resnet", "the discriminator architecture")
    epi = dict(kw.get("epilogue_kwargs") or {})
    _require(epi.get("mbstd_num_channels", 1), 1, "mbstd_num_channels")
    group = epi.get("mbstd_group_size", 4)
    return {
        "img_resolution": int(kw["img_resolution"]),
        "img_channels": int(kw["img_channels"]),
        "channel_base": int(kw.get("channel_base", 32768)),
        "channel_max": int(kw.get("channel_max", 512)),
        "conv_clamp": None if kw.get("conv_clamp") is None else float(kw["conv_clamp"]),
        "mbstd_group_size": None if group is None else int(group),
    }


def _load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    missing, unexpected = net.load_state_dict(state, strict=False)
    shapes = [k for k, v in net.state_dict().items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ConversionError(
            f"{what}: the pickle's tensors do not map onto our network (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]})"
        )


def read_networks(path: str | Path):
    """(G, D or None, generator kwargs, discriminator kwargs or None) from an NVIDIA pickle, safely."""
    from mibench_core.priors.stylegan import Discriminator, Generator

    data = load_restricted(path)
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentStub):
        raise ConversionError(f"{path}: not a StyleGAN2-ADA network pickle (no G_ema network)")
    g_kw = generator_kwargs(data["G_ema"])
    G = Generator(**g_kw)
    _load_into(G, flat_state(data["G_ema"]), "G_ema")
    D, d_kw = None, None
    if isinstance(data.get("D"), PersistentStub):
        d_kw = discriminator_kwargs(data["D"])
        D = Discriminator(**d_kw)
        _load_into(D, flat_state(data["D"]), "D")
    return G, D, g_kw, d_kw


def convert(pkl_path: str | Path, out_path: str | Path) -> str:
    """Convert an NVIDIA StyleGAN2-ADA pickle to safetensors; returns (and writes beside it) its sha256."""
    from mibench_core import store

    G, D, g_kw, d_kw = read_networks(pkl_path)
    tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
    if D is not None:
        tensors.update({f"D.{k}": v for k, v in D.state_dict().items()})
    meta = {
        "format": FORMAT,
        "generator": json.dumps(g_kw),
        "discriminator": json.dumps(d_kw),
        "source_sha256": store.sha256_file(pkl_path),
        "source_file": Path(pkl_path).name,
    }
    out_path = Path(out_path)
    store.save_tensors(out_path, tensors, metadata=meta)
    digest = store.sha256_file(out_path)
    store.write_bytes(out_path.with_name(out_path.name + ".sha256"), f"{digest}  {out_path.name}\n".encode())
    return digest


def read_converted(path: str | Path):
    """(G, D or None, generator kwargs, discriminator kwargs or None, metadata) from :func:`convert`'s file."""
    from safetensors import safe_open

    from mibench_core.priors.stylegan import Discriminator, Generator

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ConversionError(f"{path}: not a converted StyleGAN2 file (metadata format {meta.get('format')!r})")
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    g_kw, d_kw = json.loads(meta["generator"]), json.loads(meta.get("discriminator") or "null")
    G = Generator(**g_kw)
    _load_into(G, {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, "G")
    D = None
    if d_kw is not None:
        D = Discriminator(**d_kw)
        _load_into(D, {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}, "D")
    return G, D, g_kw, d_kw, meta
