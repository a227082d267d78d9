"""The PAM schedule: rounds of (permutation step, curve step), both through the Path trainer."""
from __future__ import annotations

from omegaconf import OmegaConf

from modeconn.align.pam import PamBezierPath
from modeconn.training.path_trainer import train_path


def build_pam_path(ctx, endpoints) -> PamBezierPath:
    """Tatro's PAM curve (quadratic Bezier only) over the permutation groups alignment uses."""
    method = ctx.cfg.method
    if method.name != "bezier" or method.num_bends != 3:
        raise ValueError("method.pam needs method=bezier with method.num_bends=3 (Tatro's quadratic curve)")
    return PamBezierPath(ctx.space, ctx.permutation_spec(), endpoints[0], endpoints[1], prox=method.pam.prox,
                         points=method.points).to(ctx.device)


def split_epochs(total: int, rounds: int) -> list[int]:
    """``total`` curve epochs over ``rounds`` (the last rounds get the remainder)."""
    base, extra = divmod(int(total), int(rounds))
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


def train_pam(path: PamBezierPath, ctx) -> dict:
    """Alternate permutation and curve steps (``method.pam``); the curve gets the same
    total epochs as a plain Bezier curve (``method.train.epochs``). Returns the record."""
    method = ctx.cfg.method
    pam, base = method.pam, method.train
    if int(pam.rounds) < 1:
        raise ValueError(f"method.pam.rounds must be >= 1, got {pam.rounds}")
    perm_recipe = OmegaConf.merge(base, {"epochs": pam.perm_epochs, "lr": pam.perm_lr,
                                         "momentum": pam.perm_momentum, "schedule": "constant"})
    limits = [n for n in (pam.get("perm_batches"), base.limit_batches) if n is not None]
    perm_recipe.limit_batches = min(limits) if limits else None  # trainer=smoke's limit still applies
    work = ctx.out_dir / "checkpoints" / "pam"
    history = []
    for r, curve_epochs in enumerate(split_epochs(base.epochs, pam.rounds)):
        path.set_phase("permutation")
        train_path(path, ctx, perm_recipe, work / f"round{r}_permutation", name=f"PAM round {r}: permutations")
        moved = path.round_()
        path.set_phase("curve")
        if curve_epochs:
            train_path(path, ctx, OmegaConf.merge(base, {"epochs": curve_epochs}), work / f"round{r}_curve",
                       name=f"PAM round {r}: curve")
        history.append({"round": r, "units_moved": sum(moved.values()), "curve_epochs": curve_epochs})
    units = sum(g.size for g in path.spec.groups)
    return {"rounds": int(pam.rounds), "perm_epochs": int(pam.perm_epochs), "perm_lr": float(pam.perm_lr),
            "prox": float(pam.prox), "history": history,
            "fraction_moved": history[-1]["units_moved"] / max(units, 1)}
