"""Name -> implementation registries for every pluggable method.

This module is imported while Snakemake parses the workflow, so it must stay
stdlib-only: an entry names its implementation as ``"module:function"`` and
is imported lazily (:func:`load`) by the job that runs it.

Each entry also carries the paper defaults of its hyperparameters. A config
entry is merged over those defaults; a key that is not among them is an
error (so a typo fails at validation, not silently). Adding a method is one
new module plus one entry here; no rule changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # dataset | arch | defense | prior | attack | metric
    target: str  # "package.module:callable"
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    # Valid ranges of parameters, in interval notation ("[1, inf)", "(0, inf)", "[0, 1)"),
    # checked by mibench_core.config before any job.
    bounds: dict[str, str] = field(default_factory=dict)
    # Library files (relative to mibench_core/) whose code produces this
    # artifact, besides the entry's own module; they enter its fingerprint.
    files: tuple[str, ...] = ()
    # Attacks: which prior kinds they accept (empty: no prior needed) and
    # their threat model. Priors: whether they are tied to one target.
    priors: tuple[str, ...] = ()
    access: str = "white-box"
    needs_target: bool = False
    # Attacks: prior kinds of extra attacker-side artifacts, in order (config
    # key ``aux``: one prior label per kind; they arrive as ``ctx.aux``).
    aux: tuple[str, ...] = ()

    @property
    def module_file(self) -> str:
        module = self.target.split(":", 1)[0]
        assert module.startswith("mibench_core.")
        return module[len("mibench_core.") :].replace(".", "/") + ".py"


def _entries(*entries: Entry) -> dict[str, Entry]:
    return {e.name: e for e in entries}


DATASETS = _entries(
    Entry(
        "fashion-mnist",
        "dataset",
        "mibench_core.data.idx:load_fashion_mnist",
        "Fashion-MNIST 28x28 grayscale, 10 classes (Debian package, a root, or download)",
    ),
    Entry(
        "mnist",
        "dataset",
        "mibench_core.data.idx:load_mnist",
        "MNIST 28x28 grayscale digits, 10 classes (a root, or download when online)",
    ),
    Entry(
        "cifar10",
        "dataset",
        "mibench_core.data.cifar:load_cifar10",
        "CIFAR-10 32x32 colour, 10 classes (python-pickle batches under a root, or download)",
    ),
    Entry(
        "image-folder",
        "dataset",
        "mibench_core.data.image_folder:load_image_folder",
        "class-per-folder images (CelebA / FaceScrub / FFHQ-style), centre crop and resize",
    ),
    Entry(
        "sklearn-digits",
        "dataset",
        "mibench_core.data.sklearn_digits:load_digits",
        "scikit-learn's 8x8 digits (1,797 images, ships with the wheel): tiny test data",
    ),
)

ARCHS = _entries(
    Entry(
        "mcnn",
        "arch",
        "mibench_core.models.classifiers:MCNN",
        "MCNN-like CNN of the GMI/KEDMI MNIST experiments: 3 conv-BN-LeakyReLU blocks",
        defaults={"width": 64},
    ),
    Entry(
        "evalcnn",
        "arch",
        "mibench_core.models.classifiers:EvalCNN",
        "evaluation CNN: 4 conv blocks with double convs and dropout, a different family from MCNN",
        defaults={"width": 32, "dropout": 0.3},
    ),
    Entry(
        "resnet18",
        "arch",
        "mibench_core.models.classifiers:resnet18",
        "torchvision ResNet-18 with a small-input stem (3x3 conv, stride 1 or 2, no max-pool)",
        defaults={"stem_stride": 2},
    ),
    Entry(
        "vgg16_bn",
        "arch",
        "mibench_core.models.classifiers:vgg16_bn",
        "torchvision VGG16-BN features with an adaptive pool and a 512-d head",
        defaults={},
    ),
    # --- architectures of the paper configs (issue 9) go below this line ---
    #
    #
    #
    Entry(
        "ir152",
        "arch",
        "mibench_core.models.face:ir152",
        "IR-152 face backbone at 64x64 (face.evoLVe), the KEDMI / PLG-MI 'IR152' target",
        defaults={"mode": "ir", "pretrained_weights": None, "pretrained_sha256": None, "pretrained_unverified": False},
        files=("models/classifiers.py",),
    ),
    Entry(
        "facenet64",
        "arch",
        "mibench_core.models.face:facenet64",
        "IR-50 face backbone at 64x64, the KEDMI / PLG-MI 'FaceNet64' target",
        defaults={"mode": "ir", "pretrained_weights": None, "pretrained_sha256": None, "pretrained_unverified": False},
        files=("models/classifiers.py",),
    ),
    Entry(
        "facenet112",
        "arch",
        "mibench_core.models.face:facenet112",
        "IR-50 face backbone at 112x112 (inputs resized), the GMI / KEDMI / PLG-MI evaluation model",
        defaults={"mode": "ir", "pretrained_weights": None, "pretrained_sha256": None, "pretrained_unverified": False},
        files=("models/classifiers.py",),
    ),
    Entry(
        "torchvision",
        "arch",
        "mibench_core.models.classifiers:torchvision_classifier",
        "any torchvision classification model by name (param 'model'), head resized",
        defaults={
            "model": "resnet18",
            "pretrained_weights": None,
            "pretrained_sha256": None,
            "pretrained_unverified": False,
        },
    ),
)

DEFENSES = _entries(
    Entry(
        "none",
        "defense",
        "mibench_core.models.train:no_defense",
        "undefended target: plain cross-entropy training",
    ),
    # --- defenses (issue 6) go below this line ---
    Entry(
        "mid",
        "defense",
        "mibench_core.defenses.mid:mid",
        "MID (Wang et al. 2021): variational information bottleneck before the head, CE + beta*KL",
        defaults={"beta": 0.003},
    ),
    Entry(
        "bido",
        "defense",
        "mibench_core.defenses.bido:bido",
        "BiDO (Peng et al. 2022): CE + sum_j a1*D(X,Z_j) - a2*D(Z_j,Y), D = normalised HSIC or COCO",
        defaults={"a1": 0.05, "a2": 0.5, "sigma": 5.0, "estimator": "hsic"},
    ),
    Entry(
        "negative-ls",
        "defense",
        "mibench_core.defenses.label_smoothing:negative_label_smoothing",
        "negative label smoothing (Struppek et al. 2024), ramped in after a warm-up of plain CE",
        defaults={"alpha": -0.05, "warmup_fraction": 0.5, "ramp_fraction": 0.25},
    ),
    Entry(
        "tl",
        "defense",
        "mibench_core.defenses.transfer:transfer_learning",
        "TL (Ho et al. 2024): rotation-pretrain on the public split, freeze early layers, fine-tune",
        defaults={"frozen_fraction": 0.5, "pretrain_epochs": 5},
    ),
    Entry(
        "dp-sgd",
        "defense",
        "mibench_core.defenses.dpsgd:dp_sgd",
        "DP-SGD (Abadi et al. 2016) via Opacus: per-sample clipping + Gaussian noise; epsilon reported",
        defaults={"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5, "accountant": "rdp"},
    ),
    Entry(
        "adv-training",
        "defense",
        "mibench_core.defenses.adversarial:adversarial_training",
        "adversarial training with L-inf PGD (Madry et al. 2018); robust test accuracy reported",
        defaults={"eps": 8 / 255, "step_size": 2 / 255, "steps": 7, "eval_samples": 500},
    ),
)

PRIORS = _entries(
    Entry(
        "gmi-gan",
        "prior",
        "mibench_core.priors.gmi_gan:train_prior",
        "GMI prior: DCGAN generator + WGAN-GP critic trained on the public split (Zhang et al. 2020)",
        defaults={
            "z_dim": 100,
            "dim": 64,
            "steps": 3000,
            "batch_size": 64,
            "n_critic": 5,
            "gp_weight": 10.0,
            "lr": 2e-4,
            "beta1": 0.5,
            "beta2": 0.999,
        },
    ),
    # --- priors of the white-box attacks (issue 4) go below this line ---
    Entry(
        "kedmi-gan",
        "prior",
        "mibench_core.priors.kedmi_gan:train_prior",
        "KEDMI inversion-specific GAN: K-way discriminator on the target's soft labels (Chen et al. 2021)",
        defaults={
            "z_dim": 100,
            "dim": 64,
            "steps": 3000,
            "batch_size": 64,
            "n_dis": 5,
            "entropy_weight": 1e-4,
            "lr": 2e-4,
            "beta1": 0.5,
            "beta2": 0.999,
            "max_public": None,
        },
        files=("priors/gmi_gan.py",),
        needs_target=True,
    ),
    Entry(
        "plgmi-gan",
        "prior",
        "mibench_core.priors.plgmi_gan:train_prior",
        "PLG-MI conditional GAN on top-n target-pseudo-labelled public images (Yuan et al. 2023)",
        defaults={
            "top_n": 30,
            "z_dim": 128,
            "dim": 64,
            "steps": 30000,
            "batch_size": 64,
            "n_dis": 5,
            "alpha": 0.2,
            "lr": 2e-4,
            "beta1": 0.0,
            "beta2": 0.9,
            "max_public": None,
        },
        files=("priors/gmi_gan.py", "priors/kedmi_gan.py"),
        needs_target=True,
    ),
    Entry(
        "lomma-students",
        "prior",
        "mibench_core.priors.lomma_students:train_prior",
        "LOMMA model augmentation: students distilled from the target on public data (Nguyen et al. 2023)",
        defaults={
            "n_students": 3,
            "arch": None,
            "widths": None,
            "epochs": 10,
            "batch_size": 64,
            "lr": 1e-3,
            "temperature": 1.0,
            "max_public": None,
        },
        files=("priors/kedmi_gan.py", "priors/gmi_gan.py", "models/classifiers.py", "models/train.py"),
        needs_target=True,
    ),
    #
    # --- priors of the black-box attacks (issue 5) go below this line ---
    Entry(
        "lokt-tacgan",
        "prior",
        "mibench_core.priors.lokt_tacgan:train_prior",
        "LOKT T-ACGAN (Nho et al. 2023): conditional GAN + class head, trained with the target's hard labels",
        defaults={
            "z_dim": 128,
            "dim": 64,
            "steps": 10000,
            "batch_size": 64,
            "n_dis": 5,
            "lr": 2e-4,
            "beta1": 0.0,
            "beta2": 0.9,
            "lambda_cls": 1.0,
            "public_samples": None,
        },
        files=("priors/gmi_gan.py", "attacks/oracle.py"),
        needs_target=True,
    ),
)

ATTACKS = _entries(
    Entry(
        "gmi",
        "attack",
        "mibench_core.attacks.gmi:run_attack",
        "GMI (Zhang et al. 2020): latent search with critic prior + identity loss, Nesterov SGD",
        defaults={
            "per_class": 8,
            "iterations": 1500,
            "lr": 0.02,
            "momentum": 0.9,
            "lambda_iden": 100.0,
            "clip_z": 1.0,
            "restarts": 5,
            "reference_batch": 60,
        },
        priors=("gmi-gan",),
        access="white-box",
    ),
    # --- white-box attacks (issue 4) go below this line ---
    Entry(
        "kedmi",
        "attack",
        "mibench_core.attacks.kedmi:run_attack",
        "KEDMI (Chen et al. 2021): a learned Gaussian per class through the K-way-discriminator GAN",
        defaults={"per_class": 8, "iterations": 1500, "lr": 0.02, "lambda_iden": 100.0, "samples_per_step": 1},
        files=("priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("kedmi-gan",),
    ),
    Entry(
        "plgmi",
        "attack",
        "mibench_core.attacks.plgmi:run_attack",
        "PLG-MI (Yuan et al. 2023): max-margin over augmented views through the pseudo-label cGAN",
        defaults={"per_class": 8, "iterations": 600, "lr": 0.1, "n_views": 2},
        files=("attacks/kedmi.py", "priors/plgmi_gan.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("plgmi-gan",),
    ),
    Entry(
        "lomma-gmi",
        "attack",
        "mibench_core.attacks.lomma:run_gmi",
        "LOMMA on GMI (Nguyen et al. 2023): logit loss, public-feature regulariser, distilled students",
        defaults={
            "per_class": 8,
            "iterations": 1500,
            "lr": 0.02,
            "momentum": 0.9,
            "lambda_iden": 100.0,
            "clip_z": 1.0,
            "restarts": 5,
            "reference_batch": 60,
            "lam_reg": 1.0,
            "max_public": None,
        },
        files=("attacks/gmi.py", "attacks/kedmi.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("gmi-gan",),
        aux=("lomma-students",),
    ),
    Entry(
        "lomma-kedmi",
        "attack",
        "mibench_core.attacks.lomma:run_kedmi",
        "LOMMA on KEDMI (Nguyen et al. 2023): logit loss, public-feature regulariser, distilled students",
        defaults={
            "per_class": 8,
            "iterations": 1500,
            "lr": 0.02,
            "lambda_iden": 100.0,
            "samples_per_step": 1,
            "lam_reg": 1.0,
            "max_public": None,
        },
        files=("attacks/gmi.py", "attacks/kedmi.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("kedmi-gan",),
        aux=("lomma-students",),
    ),
    Entry(
        "vmi",
        "attack",
        "mibench_core.attacks.vmi:run_attack",
        "VMI (Wang et al. 2021): per-class Gaussian q(z), CE + lambda * KL(q || N(0, I))",
        defaults={"per_class": 8, "iterations": 1500, "lr": 0.01, "kl_weight": 1.0, "samples_per_step": 4},
        files=("attacks/kedmi.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("gmi-gan", "kedmi-gan"),
    ),
    Entry(
        "deepinversion",
        "attack",
        "mibench_core.attacks.deepinversion:run_attack",
        "DeepInversion (Yin et al. 2020): pixel optimisation with BatchNorm-statistics matching, TV, l2",
        defaults={
            "per_class": 8,
            "iterations": 2000,
            "lr": 0.1,
            "tv_weight": 2.5e-5,
            "l2_weight": 0.0,
            "bn_weight": 100.0,
            "jitter": 2,
        },
        files=("attacks/kedmi.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
    ),
    Entry(
        "secretgen",
        "attack",
        "mibench_core.attacks.secretgen:run_attack",
        "SecretGen white-box (Yuan et al. 2022): latent selection by target label, then D + identity loss",
        defaults={
            "per_class": 8,
            "candidates": 5000,
            "iterations": 1500,
            "lr": 0.02,
            "momentum": 0.9,
            "lambda_iden": 100.0,
            "clip_z": 1.0,
            "reference_batch": 60,
        },
        files=("attacks/gmi.py", "attacks/kedmi.py", "priors/kedmi_gan.py", "priors/gmi_gan.py"),
        priors=("gmi-gan",),
    ),
    #
    # --- black-box and label-only attacks (issue 5) go below this line ---
    Entry(
        "brep-mi",
        "attack",
        "mibench_core.attacks.brep:run_attack",
        "BREP-MI (Kahla et al. 2022): label-only boundary repulsion, sphere sampling with growing radius",
        defaults={
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
        files=("attacks/oracle.py",),
        priors=("gmi-gan",),
        access="label",
    ),
    Entry(
        "rlb-mi",
        "attack",
        "mibench_core.attacks.rlb:run_attack",
        "RLB-MI (Han et al. 2023): Soft Actor-Critic agent in latent space, rewards from probabilities",
        defaults={
            "per_class": 8,
            "episodes": 40000,
            "max_step": 1,
            "alpha": 0.0,
            "hidden": 256,
            "gamma": 0.99,
            "tau": 0.01,
            "lr": 5e-4,
            "batch_size": 256,
            "buffer_size": 1000000,
        },
        files=("attacks/oracle.py",),
        priors=("gmi-gan",),
        access="probabilities",
    ),
    Entry(
        "lokt",
        "attack",
        "mibench_core.attacks.lokt:run_attack",
        "LOKT (Nho et al. 2023): surrogates trained on T-ACGAN samples labelled by the target, attacked white-box",
        defaults={
            "per_class": 8,
            "n_surrogates": 3,
            "surrogate_width": 32,
            "surrogate_samples": 50000,
            "surrogate_epochs": 10,
            "surrogate_batch_size": 128,
            "surrogate_lr": 1e-3,
            "iterations": 600,
            "lr": 0.1,
            "n_views": 2,
        },
        files=("attacks/oracle.py", "models/classifiers.py", "priors/lokt_tacgan.py", "priors/gmi_gan.py"),
        priors=("lokt-tacgan",),
        access="label",
    ),
    Entry(
        "secretgen-bb",
        "attack",
        "mibench_core.attacks.secretgen_bb:run_attack",
        "SecretGen black-box (Yuan et al. 2022): latent selection by label, discriminator-only optimisation",
        defaults={
            "per_class": 8,
            "n_candidates": 5000,
            "iterations": 1500,
            "lr": 0.02,
            "check_every": 50,
        },
        files=("attacks/oracle.py",),
        priors=("gmi-gan",),
        access="label",
    ),
    Entry(
        "learning-inversion",
        "attack",
        "mibench_core.attacks.learning_inversion:run_attack",
        "learning-based inversion (Yang et al. 2019): inversion network from (top-k) predictions to images",
        defaults={
            "per_class": 8,
            "top_k": None,
            "c": 50.0,
            "ngf": 128,
            "epochs": 100,
            "batch_size": 128,
            "lr": 2e-4,
            "beta1": 0.5,
            "beta2": 0.999,
            "public_samples": None,
        },
        files=("attacks/oracle.py",),
        access="top-k",
    ),
    #
    #
    #
)

METRICS = _entries(
    Entry(
        "accuracy",
        "metric",
        "mibench_core.metrics.accuracy:compute",
        "Acc@1 (and Acc@5 with more than 5 classes) of the evaluation model on reconstructions",
    ),
    Entry(
        "knn_distance",
        "metric",
        "mibench_core.metrics.feature_space:knn_distance",
        "min squared L2 in the evaluation model's penultimate space to private images of the class",
    ),
    Entry(
        "feature_distance",
        "metric",
        "mibench_core.metrics.feature_space:feature_distance",
        "L2 distance to the private class centroid in the evaluation model's penultimate space",
    ),
    Entry(
        "prdc",
        "metric",
        "mibench_core.metrics.feature_space:prdc",
        "precision / recall / density / coverage (Naeem et al. 2020) in evaluation feature space",
        defaults={"k": 3},
    ),
    Entry(
        "eval_frechet",
        "metric",
        "mibench_core.metrics.feature_space:eval_frechet",
        "Frechet distance in the evaluation model's feature space (not InceptionV3 FID)",
    ),
    # --- metrics of issue 7 go below this line ---
    Entry(
        "psnr_ssim",
        "metric",
        "mibench_core.metrics.pixel:psnr_ssim",
        "PSNR and Gaussian SSIM (Wang et al. 2004) to the targeted or nearest private image of the class",
        defaults={"max_reference_per_class": None},
    ),
    Entry(
        "sok",
        "metric",
        "mibench_core.metrics.pixel:sok",
        "SoK sample-level metrics (Wen et al. 2025): S-Dis and coverage alpha under SSIM, PSNR, MSE",
    ),
    Entry(
        "lpips",
        "metric",
        "mibench_core.metrics.perceptual:lpips_distance",
        "LPIPS v0.1 (Zhang et al. 2018) to the nearest private image of the class (needs backbone weights)",
        defaults={"net": "alex", "resize": 64, "max_reference_per_class": None},
        files=("metrics/pixel.py", "weights.py"),
    ),
    Entry(
        "fid",
        "metric",
        "mibench_core.metrics.fid:fid",
        "FID: Frechet distance of pytorch-fid InceptionV3 pool3 features (needs the FID weights)",
        defaults={"max_private": None, "batch_size": 50},
        files=("weights.py",),
    ),
    Entry(
        "facenet_distance",
        "metric",
        "mibench_core.metrics.facenet:facenet_distance",
        "min squared L2 in FaceNet (InceptionResnetV1) embeddings to private faces of the class",
        defaults={"pretrained": "vggface2", "face_dataset": None, "image_size": 160, "max_reference_per_class": None},
        files=("metrics/pixel.py", "weights.py"),
    ),
)

REGISTRIES: dict[str, dict[str, Entry]] = {
    "dataset": DATASETS,
    "arch": ARCHS,
    "defense": DEFENSES,
    "prior": PRIORS,
    "attack": ATTACKS,
    "metric": METRICS,
}

# Files shared by every artifact of a stage; they enter its code fingerprint.
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "data": ("data/common.py", "runtime.py"),
    "model": ("models/classifiers.py", "models/train.py", "runtime.py"),
    "prior": ("priors/__init__.py", "priors/common.py", "runtime.py"),
    "attack": ("attacks/common.py", "attacks/contract.py", "attacks/summary.py", "priors/common.py", "runtime.py"),
    "metric": ("metrics/common.py", "metrics/functional.py", "runtime.py"),
}


def get(kind: str, name: str) -> Entry:
    try:
        return REGISTRIES[kind][name]
    except KeyError:
        valid = ", ".join(sorted(REGISTRIES.get(kind, {})))
        raise KeyError(f"unknown {kind} {name!r}; valid: {valid}") from None


def load(entry: Entry) -> Callable[..., Any]:
    """Import the implementation behind an entry (heavy imports happen here)."""
    module, _, attr = entry.target.partition(":")
    return getattr(importlib.import_module(module), attr)
