"""``mibench`` command line: the entry points Snakemake rules run, and tools for people.

mibench run --job JSON           run one artifact job (what the rules call)
mibench list                     every registered method with a one-line description
mibench plan [-c CONFIG ...]     what a config expands to: jobs by stage
mibench show ID [-c CONFIG ...]  an artifact's manifest and lineage
mibench weights list [-c ...]    known weight files: present or not, where, checksum status
mibench weights verify [NAME]    verify the sha256 of one (or every present) weight file
mibench weights path NAME        the verified path of a weight file (exit 1 when absent)
mibench weights convert NAME     convert a verified network pickle to safetensors (stylegan2-ada-ffhq)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run_job(job: dict) -> dict:
    """Run one job and write its manifest (last, atomically)."""
    import importlib

    from mibench_core import store
    from mibench_core.runtime import set_threads, setup_logging

    setup_logging()
    set_threads()
    from mibench_core.stages import RUNNERS

    module, _, attr = RUNNERS[job["kind"]].partition(":")
    fn = getattr(importlib.import_module(module), attr)
    Path(job["outdir"]).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    files, results, device = fn(job)
    return store.write_manifest(job, files, wall_time_s=time.time() - t0, device=device, extra=results)


def _load_config(paths: list[str]) -> dict:
    import yaml

    from mibench_core.config import validate

    repo = Path(__file__).resolve().parent.parent
    cfg: dict = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on paper-scale grids
    for path in [str(repo / "config" / "config.yaml"), *paths]:
        with open(path) as fh:
            _merge(cfg, yaml.load(fh, Loader=loader) or {})
    return validate(cfg)


def _merge(base: dict, new: dict) -> None:
    """Snakemake's rule for several config files: dicts merge, everything else replaces."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def cmd_list(_args) -> int:
    from mibench_core import registry

    for kind, entries in registry.REGISTRIES.items():
        print(f"{kind}s:")
        for name, entry in sorted(entries.items()):
            print(f"  {name:<18} {entry.description}")
    return 0


def cmd_plan(args) -> int:
    from collections import Counter

    from mibench_core.plan import build

    plan = build(_load_config(args.configfile))
    counts = Counter(n.kind for n in plan.nodes.values())
    for kind in ("data", "model", "prior", "attack", "metric"):
        print(f"{kind:<8} {counts.get(kind, 0)}")
    print(f"runs     {len(plan.runs)}")
    if args.verbose:
        for node in plan.nodes.values():
            print(f"{node.kind:<8} {node.id:<32} {node.label}")
    return 0


def cmd_show(args) -> int:
    from mibench_core import store
    from mibench_core.plan import build

    plan = build(_load_config(args.configfile))
    if args.id not in plan.nodes:
        print(f"no artifact {args.id!r} in this config's plan", file=sys.stderr)
        return 2
    for nid in plan.lineage(args.id):
        node = plan.nodes[nid]
        folder = Path(node.directory(plan.results_dir))
        state = "present" if (folder / store.MANIFEST).exists() else "not built"
        print(f"{node.kind:<7} {nid:<32} {node.label}  [{state}]")
    folder = Path(plan.nodes[args.id].directory(plan.results_dir))
    if (folder / store.MANIFEST).exists():
        print(json.dumps(store.read_manifest(folder), indent=2))
    return 0


def _weights_user(args) -> dict:
    """The config's ``weights:`` mapping when config files are given (else none)."""
    if not args.configfile:
        return {}
    return _load_config(args.configfile).get("weights", {})


def cmd_weights(args) -> int:
    from mibench_core import weights

    user = _weights_user(args)
    if args.name and args.name not in weights.KNOWN:
        print(f"unknown weight file {args.name!r}; known: {', '.join(sorted(weights.KNOWN))}", file=sys.stderr)
        return 2
    if args.action == "list":
        for name, entry in weights.KNOWN.items():
            res = weights.resolve(name, user)
            state = {"ok": "present, verified", "missing": "absent"}.get(res.status, f"present, {res.status}")
            print(f"{name:<22} {entry.filename:<40} {state}")
            print(f"{'':<22} used by: {entry.used_by}")
            if res.path:
                print(f"{'':<22} at: {res.path}")
                print(f"{'':<22} check: {res.detail}")
            else:
                print(f"{'':<22} looked in: {', '.join(str(p) for p in res.searched)}")
            digest = entry.sha256 or (
                f"unknown (file-name prefix {entry.sha256_prefix})" if entry.sha256_prefix else "unknown"
            )
            print(f"{'':<22} expected sha256: {digest}")
            print(f"{'':<22} source: {entry.url}")
        return 0
    if args.action == "verify":
        names = [args.name] if args.name else list(weights.KNOWN)
        bad = checked = 0
        for name in names:
            res = weights.resolve(name, user)
            if res.status == "missing" and not args.name:
                continue
            checked += 1
            print(f"{name}: {res.status}: {res.reason() if not res.ok else f'{res.path} ({res.detail})'}")
            bad += not res.ok
        if not checked:
            print("no known weight file is present (see `mibench weights list` for where they are looked for)")
        return 1 if bad else 0
    res = weights.resolve(args.name, user)
    if not res.ok:
        print(res.reason(), file=sys.stderr)
        return 1
    if args.action == "convert":
        return _convert(args, res)
    print(res.path)
    return 0


def _convert(args, res) -> int:
    """Convert a verified StyleGAN2-ADA pickle with the restricted unpickler; print the output's sha256."""
    from mibench_core.priors import stylegan_pickle

    if args.name not in stylegan_pickle.CONVERTIBLE:
        print(f"{args.name!r} is not a network pickle; convertible: {', '.join(stylegan_pickle.CONVERTIBLE)}",
              file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args.out) if args.out else res.path.with_name(f"{args.name}.safetensors")
    try:
        digest = stylegan_pickle.convert(res.path, out)
    except (stylegan_pickle.UnsafePickleError, stylegan_pickle.ConversionError) as exc:
        print(f"{res.path}: {exc}", file=sys.stderr)
        return 1
    print(out)
    print(f"sha256 {digest}")
    print(f"prior config: {{name: stylegan2-ada, weights_file: {out}, sha256: {digest}}}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mibench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run one artifact job")
    p.add_argument("--job", required=True, help="job description (JSON), as the plan makes it")
    sub.add_parser("list", help="list registered methods")
    for name in ("plan", "show"):
        p = sub.add_parser(name)
        p.add_argument(
            "-c", "--configfile", action="append", default=[], help="config file(s) merged over config/config.yaml"
        )
        if name == "show":
            p.add_argument("id")
        else:
            p.add_argument("-v", "--verbose", action="store_true")
    p = sub.add_parser("weights", help="external weight files: list, verify, path, convert")
    p.add_argument("action", choices=["list", "verify", "path", "convert"])
    p.add_argument("name", nargs="?", help="weight file name (see `mibench weights list`)")
    p.add_argument("-c", "--configfile", action="append", default=[], help="config file(s) whose weights: to use")
    p.add_argument("--out", help="convert: the safetensors file to write (default: NAME.safetensors beside it)")
    args = parser.parse_args(argv)
    if args.cmd == "weights" and args.action in ("path", "convert") and not args.name:
        parser.error(f"mibench weights {args.action} needs a NAME")
    if args.cmd == "run":
        run_job(json.loads(args.job))
        return 0
    return {"list": cmd_list, "plan": cmd_plan, "show": cmd_show, "weights": cmd_weights}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
