"""BREP-MI: label-only model inversion by boundary repulsion (Kahla et al.,
"Label-Only Model Inversion Attacks via Boundary Repulsion", CVPR 2022).

The adversary sees only the target's predicted label. On the GMI prior:

1. Initial points: sample latents z ~ N(0, I) clipped to [-1.5, 1.5] in
   batches and keep, per target class y, latents whose image the target
   labels y.
2. From such a z, sample ``sphere_points`` (32) points z + R u on a sphere of
   radius R (initially 2) with u uniform on the unit sphere, label them, and
   estimate the direction away from the class boundary
   g = mean(phi(z + R u) * u), phi = 0 if labelled y, -1 otherwise (the
   authors' "repulsion only" estimate).
3. Grow R by 1.3 when the sphere's labels, as +1 (labelled y) / -1 (not),
   sum to more than 0.75 x ``sphere_points``: the authors' test
   (``is_target_class`` returns +-1), which holds when more than 87.5% of
   the sphere is still labelled y (not 75% of the points, as a reading of
   the threshold as a fraction inside would have it). On such a round the direction is divided by the grown radius, as
   the authors' code does (it averages phi * R u and divides by the current,
   already grown, R: g * R / (1.3 R) = g / 1.3).
4. Step z <- clip(z + min(R/3, 3) * g, -1.5, 1.5), the step size from the
   radius before growth. If the target does not label the new point y, the
   step is dropped: the next round samples a new sphere at the same point
   and (possibly grown) radius, as the authors' outer loop does after its
   inner loop's ``break``; the latent keeps running.
5. Stop when R has not grown for ``max_iters_at_radius`` iterations, counted
   as the authors count them: accepted steps in rounds without growth (a
   growth round and a dropped step do not advance the count).
6. The reconstruction is the point saved at the last radius growth (the
   point after that round's step, when the step was accepted), as the
   authors' code reports; a latent whose radius never grows reports its
   start. The last point is kept too (``final`` of
   :func:`boundary_repulsion`).

Defaults follow the paper and the authors' code: 32 sphere points, initial
radius 2, expansion 1.3, 75% threshold, step min(R/3, 3), clip 1.5, initial
search batch 256. Ours:

* Several reconstructions per class (``per_class``): every slot starts from
  a different initial latent and runs the same procedure independently; all
  running slots are queried in one batch per round.
* ``max_iterations`` caps the rounds (sphere samples; None: the authors'
  rule only, under which a latent whose steps keep leaving the class, or
  whose radius keeps growing, never stops). The CPU default caps them and
  lowers ``max_iters_at_radius`` (the authors' CelebA setting waits 1000
  iterations at a radius).
* A class for which the initial search finds no latent labelled y within
  ``max_init_batches`` batches starts from a random clipped latent; this is
  recorded (extras ``init_found``); such a slot does not run and counts as
  not in the class.

Queries: every image labelled by the target is one query. Per
reconstruction (extras ``queries``): its own sphere and step queries plus an
equal share of the shared initial search.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mibench_core.attacks.contract import AttackContext, AttackResult
from mibench_core.runtime import progress

METHODS = [
    {
        "name": "brep-mi",
        "kind": "attack",
        "call": "run_attack",
        "description": "BREP-MI (Kahla et al. 2022): label-only boundary repulsion, sphere sampling with growing "
        "radius",
        "defaults": {
            "per_class": 8,
            "sphere_points": 32,
            "initial_radius": 2.0,
            "expansion": 1.3,
            "grow_threshold": 0.75,
            "max_step": 3.0,
            "clip_z": 1.5,
            "max_iters_at_radius": 1000,
            "max_iterations": None,
            "init_batch": 256,
            "max_init_batches": 1000,
        },
        "bounds": {
            "per_class": "[1, inf)",
            "sphere_points": "[1, inf)",
            "initial_radius": "(0, inf)",
            "expansion": "(1, inf)",
            "grow_threshold": "[0, 1)",
            "max_step": "(0, inf)",
            "clip_z": "(0, inf)",
            "max_iters_at_radius": "[1, inf)",
            "max_iterations": "[1, inf)",
            "init_batch": "[1, inf)",
            "max_init_batches": "[1, inf)",
        },
        "priors": ["gmi-gan"],
        "access": "label",
    }
]


def sphere_directions(n: int, points: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """``[n, points, dim]`` directions uniform on the unit sphere."""
    u = torch.randn(n, points, dim, generator=gen)
    return u / u.norm(dim=-1, keepdim=True)


def repulsion_gradient(u: torch.Tensor, labelled_y: torch.Tensor) -> torch.Tensor:
    """BREP's estimate mean(phi * u) with phi = 0 inside the class, -1 outside.

    ``u``: [n, points, dim] unit directions; ``labelled_y``: [n, points] bool."""
    phi = labelled_y.to(u.dtype) - 1.0
    return (phi.unsqueeze(-1) * u).mean(1)


def growth_statistic(labelled_y: torch.Tensor) -> torch.Tensor:
    """The authors' test statistic for growing the radius: the mean of the
    sphere's labels as +1 (labelled y) / -1 (not), per latent [n]. Above
    ``grow_threshold`` (0.75) means more than (1 + 0.75) / 2 = 87.5% inside."""
    return (2.0 * labelled_y.float() - 1.0).mean(1)


def boundary_repulsion(
    z: torch.Tensor,
    y: torch.Tensor,
    label_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    gen: torch.Generator,
    sphere_points: int = 32,
    initial_radius: float = 2.0,
    expansion: float = 1.3,
    grow_threshold: float = 0.75,
    max_step: float = 3.0,
    clip_z: float = 1.5,
    max_iters_at_radius: int = 1000,
    max_iterations: int | None = None,
    history: list | None = None,
    start: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Run BREP from latents ``z`` [S, d] (each labelled ``y`` [S]).

    ``label_fn(latents, slots)`` returns the target's labels of the latents'
    images (``slots``: which of the S latents each row serves). One round
    samples a sphere around every running latent and tries one step (see the
    module docstring for the authors' loop it follows). Returns, per slot:
    ``z`` the point saved at the last radius growth (the start if the radius
    never grew), ``final`` the last point inside the class, ``radius``,
    ``iterations`` (rounds run), ``steps`` (accepted steps in rounds without
    growth: the authors' iteration count), ``growths``, ``rejected`` (steps
    that left the class) and ``capped`` (still running at ``max_iterations``).
    ``history``, when a list, receives per-round dicts (radius and step before
    growth, grew, accepted, the current points after the round).
    ``start`` (bool [S]) marks the slots to run (default: all)."""
    n, d = z.shape
    z = z.clone()
    saved = z.clone()
    dev = z.device
    radius = torch.full((n,), float(initial_radius), device=dev)
    counts = {k: torch.zeros(n, dtype=torch.long, device=dev) for k in ("iterations", "steps", "growths", "rejected")}
    steps_at_growth = torch.zeros(n, dtype=torch.long, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev) if start is None else start.to(dev).bool()
    it = 0
    bar = progress(desc="brep", unit="it", total=max_iterations)
    while active.any() and (max_iterations is None or it < max_iterations):
        it += 1
        act = torch.nonzero(active).flatten()
        zs, rs, ys = z[act], radius[act], y[act]
        u = sphere_directions(len(act), sphere_points, d, gen).to(z.device)
        pts = zs[:, None, :] + rs[:, None, None] * u
        labels = label_fn(pts.reshape(-1, d), act.repeat_interleave(sphere_points)).view(len(act), sphere_points)
        inside = labels == ys[:, None]
        step = torch.clamp(rs / 3.0, max=max_step)  # the radius before growth
        grow = growth_statistic(inside) > grow_threshold
        new_r = torch.where(grow, rs * expansion, rs)
        # the authors' mean(phi * R u) / R_new: divided by the grown radius when R grows
        g = repulsion_gradient(u, inside) * (rs / new_r)[:, None]
        z_new = (zs + step[:, None] * g).clamp(-clip_z, clip_z)
        ok = label_fn(z_new, act) == ys
        z[act[ok]] = z_new[ok]  # a step that leaves the class is dropped: same point, same radius next round
        radius[act] = new_r
        saved[act[grow & ok]] = z_new[grow & ok]
        steps_at_growth[act[grow]] = counts["steps"][act[grow]]
        counts["steps"][act[ok & ~grow]] += 1
        counts["growths"][act[grow]] += 1
        counts["rejected"][act[~ok]] += 1
        counts["iterations"][act] += 1
        stalled = (counts["steps"][act] - steps_at_growth[act]) >= max_iters_at_radius
        active[act[stalled]] = False
        if history is not None:
            history.append(
                {
                    "radius": rs.clone(),
                    "step": step.clone(),
                    "grew": grow.clone(),
                    "accepted": ok.clone(),
                    "z": z.clone(),
                }
            )
        bar.update(1)
        bar.set_postfix(active=int(active.sum()), radius=f"{radius.mean().item():.2f}")
    bar.close()
    return {"z": saved, "final": z, "radius": radius, **counts, "capped": active}


def initial_latents(
    ctx: AttackContext, label_fn, per_class: int, batch: int, max_batches: int, clip_z: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class, ``per_class`` clipped latents the target labels y (shared queries)."""
    found: dict[int, list[torch.Tensor]] = {c: [] for c in ctx.classes}
    for _ in range(max_batches):
        if all(len(v) >= per_class for v in found.values()):
            break
        z = ctx.prior.sample_z(batch, ctx.gen).clamp(-clip_z, clip_z).to(ctx.device)
        labels = label_fn(z, None)
        for c in ctx.classes:
            need = per_class - len(found[c])
            if need > 0:
                found[c].extend(z[labels == c][:need])
    zs, ys, ok = [], [], []
    for c in ctx.classes:
        got = found[c]
        missing = per_class - len(got)
        if missing:
            got = got + list(ctx.prior.sample_z(missing, ctx.gen).clamp(-clip_z, clip_z).to(ctx.device))
        zs += got
        ys += [c] * per_class
        ok += [True] * (per_class - missing) + [False] * missing
    return torch.stack(zs), torch.tensor(ys, device=ctx.device), torch.tensor(ok)


def run_attack(
    ctx: AttackContext,
    per_class: int,
    sphere_points: int,
    initial_radius: float,
    expansion: float,
    grow_threshold: float,
    max_step: float,
    clip_z: float,
    max_iters_at_radius: int,
    max_iterations: int | None,
    init_batch: int,
    max_init_batches: int,
) -> AttackResult:
    G, oracle = ctx.prior.generator, ctx.oracle

    @torch.no_grad()
    def label_fn(z: torch.Tensor, slots: torch.Tensor | None) -> torch.Tensor:
        return oracle(G(z), slots=slots)

    z0, y, init_found = initial_latents(ctx, label_fn, per_class, init_batch, max_init_batches, clip_z)
    out = boundary_repulsion(
        z0, y, label_fn, ctx.gen, sphere_points, initial_radius, expansion, grow_threshold,
        max_step, clip_z, max_iters_at_radius, max_iterations, start=init_found,
    )  # fmt: skip
    with torch.no_grad():
        images = G(out["z"]).cpu()
    # A slot is in the class when its start was labelled y: the reported point
    # (the start, or a step the oracle accepted at a radius growth) was checked
    # by the oracle, so no further query is needed. Slots without such a start
    # do not run (BREP needs a point inside the class).
    in_class = init_found
    n = len(y)
    info = {
        "target_success": in_class.float().mean().item(),
        "init_found": int(init_found.sum()),
        "final_radius_mean": out["radius"].mean().item(),
        "iterations_mean": out["iterations"].float().mean().item(),
        "growths_mean": out["growths"].float().mean().item(),
        "rejected_steps": int(out["rejected"].sum()),
        "stopped_by_cap": int(out["capped"].sum()),
        "queries_shared": oracle.shared_queries,
    }
    extras = {
        "latents": out["z"].cpu(),
        "final_radius": out["radius"].cpu(),
        "iterations": out["iterations"].cpu(),
        "growths": out["growths"].cpu(),
        "init_found": init_found.to(torch.int64),
        "queries": oracle.per_reconstruction(n),
    }
    return AttackResult(images, y.cpu(), extras, info)
