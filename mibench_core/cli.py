"""``mibench`` command line: the entry points Snakemake rules run, and tools for people.

mibench run --job JSON           run one artifact job (what the rules call)
mibench list                     every registered method with a one-line description
mibench plan [-c CONFIG ...]     what a config expands to: jobs by stage
mibench show ID [-c CONFIG ...]  an artifact's manifest and lineage
mibench verify [-c CONFIG ...]   check every built artifact of a config against its manifest
mibench yaml-check SNAKEMAKE-ARGS  read every --configfile of a snakemake command line (scripts/run.sh)
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
    from mibench_core.stages import RUNNERS

    setup_logging()
    set_threads()
    # inputs are checked before anything loads them: a corrupted artifact stops the job, naming it
    store.check_inputs(job)
    module, _, attr = RUNNERS[job["kind"]].partition(":")
    fn = getattr(importlib.import_module(module), attr)
    outdir = Path(job["outdir"])
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(".*.tmp"):  # half-written files of an attempt that was killed
        stale.unlink(missing_ok=True)
    t0 = time.time()
    files, results, device = fn(job)
    return store.write_manifest(job, files, wall_time_s=time.time() - t0, device=device, extra=results)


def _load_config(paths: list[str], preflight: bool = True) -> dict:
    """config/config.yaml with ``paths`` merged over it, validated and preflighted as the Snakefile does."""
    from mibench_core.config import ConfigError, checked, load_yaml, validate

    repo = Path(__file__).resolve().parent.parent
    cfg: dict = {}
    for path in [str(repo / "config" / "config.yaml"), *paths]:
        _merge(cfg, load_yaml(path))
    if preflight:
        return checked(cfg)
    try:
        return validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


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

    from mibench_core.plan import STAGE_DIRS, build

    plan = build(_load_config(args.configfile))
    counts = Counter(n.kind for n in plan.nodes.values())
    for kind in STAGE_DIRS:
        print(f"{kind:<8} {counts.get(kind, 0)}")
    for kind in ("shadow", "scenario", "mia", "mia_eval"):  # membership inference, when configured
        if counts.get(kind):
            print(f"{kind:<8} {counts[kind]}")
    print(f"runs     {len(plan.runs)}")
    if args.verbose:
        for node in plan.nodes.values():
            print(f"{node.kind:<8} {node.id:<32} {node.label}")
    return 0


def _state(folder: Path) -> tuple[str, list[str]]:
    """(state, problems) of an artifact folder: not built, present and verified, or corrupt."""
    from mibench_core import store

    if not (folder / store.MANIFEST).exists():
        return "not built", []
    found = store.problems(folder)
    return ("CORRUPT" if found else "present, verified"), found


def cmd_show(args) -> int:
    from mibench_core import store
    from mibench_core.plan import build

    plan = build(_load_config(args.configfile))
    if args.id not in plan.nodes:
        print(f"no artifact {args.id!r} in this config's plan", file=sys.stderr)
        return 2
    for nid in plan.lineage(args.id):
        node = plan.nodes[nid]
        state, found = _state(Path(node.directory(plan.results_dir)))
        print(f"{node.kind:<7} {nid:<32} {node.label}  [{state}]")
        for line in found:
            print(f"{'':<8}{line}")
    folder = Path(plan.nodes[args.id].directory(plan.results_dir))
    state, found = _state(folder)
    if state != "not built":
        if found:
            print(f"The manifest below does not describe the files in {folder}. {store.rebuild_hint(folder)}")
        try:
            print(json.dumps(store.read_manifest(folder), indent=2))
        except ValueError:
            pass  # unreadable: said above
    return 1 if found else 0


def cmd_verify(args) -> int:
    from mibench_core import store
    from mibench_core.plan import build

    plan = build(_load_config(args.configfile))
    bad = built = 0
    for node in plan.nodes.values():
        folder = Path(node.directory(plan.results_dir))
        state, found = _state(folder)
        if state == "not built":
            continue
        built += 1
        if found:
            bad += 1
            print(f"CORRUPT {node.kind} {node.id} ({node.label}): {'; '.join(found)}")
            print(f"        {store.rebuild_hint(folder)}")
        elif args.verbose:
            print(f"ok      {node.kind} {node.id}")
    print(f"{built - bad} of {built} built artifacts verified, {bad} corrupt, {len(plan.nodes) - built} not built")
    return 1 if bad else 0


def _weights_user(args) -> dict:
    """The config's ``weights:`` mapping when config files are given (else none)."""
    if not args.configfile:
        return {}
    return _load_config(args.configfile, preflight=False).get("weights", {})  # listing what is missing


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
            if entry.folder:
                digest = "of its SHA256SUMS manifest, given in the config"
            print(f"{'':<22} expected sha256: {digest}")
            print(f"{'':<22} source: {entry.url}")
            if entry.provide:
                print(f"{'':<22} provide: {entry.provide}")
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


def configfiles_of(argv: list[str]) -> list[str]:
    """The files a snakemake command line names with --configfile / --configfiles."""
    out, taking = [], False
    for arg in argv:
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            taking = name in ("--configfile", "--configfiles") and not eq
            if name in ("--configfile", "--configfiles") and eq:
                out.append(value)
        elif taking:
            out.append(arg)
    return out


def yaml_check(snakemake_args: list[str]) -> int:
    """Snakemake reads --configfile files itself, and its message for a broken one names neither the
    file nor the line; this reads them first and says which file, and where."""
    from mibench_core.config import ConfigError, load_yaml

    try:
        for path in configfiles_of(snakemake_args):
            load_yaml(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mibench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["yaml-check"]:  # the rest is a snakemake command line, not ours to parse
        return yaml_check(argv[1:])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run one artifact job")
    p.add_argument("--job", required=True, help="job description (JSON), as the plan makes it")
    p.add_argument("--label", help="the artifact's label, recorded in its manifest (a name, not part of the job)")
    sub.add_parser("list", help="list registered methods")
    for name in ("plan", "show", "verify"):
        p = sub.add_parser(name)
        p.add_argument(
            "-c", "--configfile", action="append", default=[], help="config file(s) merged over config/config.yaml"
        )
        if name == "show":
            p.add_argument("id")
        else:
            p.add_argument("-v", "--verbose", action="store_true")
    sub.add_parser("yaml-check", help="read the config files of a snakemake command line (its other arguments)")
    p = sub.add_parser("weights", help="external weight files: list, verify, path, convert")
    p.add_argument("action", choices=["list", "verify", "path", "convert"])
    p.add_argument("name", nargs="?", help="weight file name (see `mibench weights list`)")
    p.add_argument("-c", "--configfile", action="append", default=[], help="config file(s) whose weights: to use")
    p.add_argument("--out", help="convert: the safetensors file to write (default: NAME.safetensors beside it)")
    p = sub.add_parser("readme", help="rewrite the README's generated result sections from the report tables")
    p.add_argument("--check", action="store_true", help="only say whether the README agrees (exit 1 if not)")
    p.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    if args.cmd == "readme":
        from mibench_core.report.readme import update

        agreed = update(args.root, check=args.check)
        if args.check and not agreed:
            print("README.md disagrees with the report tables: run `mibench readme`", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "weights" and args.action in ("path", "convert") and not args.name:
        parser.error(f"mibench weights {args.action} needs a NAME")
    if args.cmd == "run":
        from mibench_core.store import CorruptArtifact

        job = json.loads(args.job)
        if args.label is not None:
            job["label"] = args.label
        try:
            run_job(job)
        except CorruptArtifact as exc:
            print(f"mibench: {exc}", file=sys.stderr)
            return 1
        return 0
    from mibench_core.config import ConfigError

    commands = {"list": cmd_list, "plan": cmd_plan, "show": cmd_show, "verify": cmd_verify, "weights": cmd_weights}
    try:
        return commands[args.cmd](args)
    except ConfigError as exc:  # the message `snakemake -n` prints for the same config, without a traceback
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
