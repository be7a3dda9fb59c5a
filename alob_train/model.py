"""The ALOB model (Trimmer + GRL, Identifier + FPP, CosFace) and its ablation variants.

Variants (paper Table 8 and its baselines); ``e`` is the embedding classified for L_f and
returned by :meth:`ALOB.embed` at test time, ``f = F^f(x)``, ``fm = F^m(x)``:

=========  ==============================  =================
variant    embedding e                     Trimmer loss L_m
=========  ==============================  =================
alob       f - proj_fm(f)  (FPP)           CosFace(GRL(fm))
alob-g     f - proj_fm(f)                  CosFace(fm)
alob-f     f - fm                          CosFace(GRL(fm))
sum        f + fm                          CosFace(fm)
concat     [f, fm]  (2·dim)                CosFace(fm)
baseline   f  (one backbone, no Trimmer)   none
=========  ==============================  =================

Classifier: by default f^m and e each have their own CosFace head (the paper's Figure 1 draws two
classifier losses; the screening in docs/RESULTS.md found the shared head, which its text
suggests, coupling f^m to the class weights); ``classifier="shared"`` keeps one for both. ``concat`` always has two,
since its embedding is twice as wide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from alob_train.backbones import build_backbone
from alob_train.config import TrainConfig
from alob_train.finetune import shared_stage_count
from alob_train.layers import CosFace, GradientReversal, project_out

VARIANTS = ("alob", "alob-g", "alob-f", "sum", "concat", "baseline")
_WITH_GRL = ("alob", "alob-f")


class ALOB(nn.Module):
    """Identifier and (except ``baseline``) Trimmer backbones with their CosFace classifier(s)."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        variant: str = "alob",
        input_size: tuple[int, int] = (112, 96),
        dim: int = 512,
        dropout: float = 0.0,
        classifier: str = "separate",
        detach_fpp: bool = False,
        grl_coeff: float = 1.0,
        s: float = 30.0,
        m: float = 0.4,
        shared_stages: int = 0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        if classifier not in ("shared", "separate"):
            raise ValueError(f"classifier must be 'shared' or 'separate', got {classifier!r}")
        self.variant = variant
        self.detach_fpp = detach_fpp
        self.identifier = build_backbone(backbone, input_size, dim, dropout)
        self.trimmer = None if variant == "baseline" else build_backbone(backbone, input_size, dim, dropout)
        self.grl = GradientReversal(grl_coeff) if variant in _WITH_GRL else None
        self.embedding_dim = 2 * dim if variant == "concat" else dim
        self.classifier = CosFace(self.embedding_dim, num_classes, s, m)
        separate = self.trimmer is not None and (classifier == "separate" or variant == "concat")
        self.trimmer_classifier = CosFace(dim, num_classes, s, m) if separate else None
        # leading trunk stages computed once for both networks (frozen and equal in both: fine-tuning)
        self.shared_stages = shared_stages if self.trimmer is not None else 0
        self.kept_in_eval: list[nn.Module] = []  # frozen modules that stay in eval mode when training

    @classmethod
    def from_config(cls, config: TrainConfig, num_classes: int) -> "ALOB":
        """The model a run's settings describe (``config.input_size`` resolved) over ``num_classes``."""
        if config.input_size is None:
            raise ValueError("the config's input_size must be set (the engine sets it from the data)")
        return cls(num_classes, config.backbone, config.variant, tuple(config.input_size), config.dim,
                   config.dropout, config.classifier, config.detach_fpp, config.grl_coeff, config.scale,
                   config.margin, shared_stage_count(config))

    def train(self, mode: bool = True) -> "ALOB":
        """As ``nn.Module.train``, but the frozen modules of a fine-tuned run stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self.kept_in_eval:
                module.eval()
        return self

    def set_grl_coeff(self, coeff: float) -> None:
        """Set the GRL's C (the engine calls this every step when a ramp is used)."""
        if self.grl is not None:
            self.grl.coeff = float(coeff)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(e, f, fm): the variant's embedding, the Identifier's feature and the Trimmer's
        (None for baseline)."""
        if self.shared_stages:
            k = self.shared_stages
            shared = self.identifier.trunk[:k](x)
            f = self.identifier.head(self.identifier.trunk[k:](shared))
            fm = self.trimmer.head(self.trimmer.trunk[k:](shared))
        else:
            f = self.identifier(x)
            if self.trimmer is None:
                return f, f, None
            fm = self.trimmer(x)
        if self.variant in ("alob", "alob-g"):
            e = project_out(f, fm, detach=self.detach_fpp)
        elif self.variant == "alob-f":
            e = f - (fm.detach() if self.detach_fpp else fm)
        elif self.variant == "sum":
            e = f + fm
        else:
            e = torch.cat([f, fm], dim=1)
        return e, f, fm

    @property
    def trimmer_head(self) -> CosFace | None:
        """The CosFace head that scores fᵐ (the shared one unless heads are separate)."""
        return None if self.trimmer is None else (self.trimmer_classifier or self.classifier)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Training pass: ``loss_f`` (CosFace on e), ``loss_m`` (on the Trimmer side, None for
        baseline), ``cos`` (e's cosines to the class weights, for accuracy) and, detached for the
        diagnostics, ``f`` and ``fm``."""
        e, f, fm = self._features(x)
        cos = self.classifier.cosine(e)
        loss_f = F.cross_entropy(self.classifier(e, labels), labels)
        loss_m = None
        if fm is not None:
            loss_m = F.cross_entropy(self.trimmer_head(self.grl(fm) if self.grl is not None else fm, labels), labels)
        return {"loss_f": loss_f, "loss_m": loss_m, "cos": cos, "f": f.detach(),
                "fm": None if fm is None else fm.detach()}

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The test-time face embedding of the variant (call in eval mode)."""
        return self._features(x)[0]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(e, f, fm) at test time: the embedding, the Identifier's feature before the projection
        and the Trimmer's feature (None for baseline); for ``alob-eval diagnose``."""
        return self._features(x)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser: ``trimmer`` (SGD: Trimmer backbone and the classifier C_m, the
        shared one included) and ``identifier`` (Adam: Identifier backbone, its own classifier).
        ``baseline`` has only the identifier side, classifier included."""
        ident = list(self.identifier.parameters())
        if self.trimmer is None:
            return {"identifier": ident + list(self.classifier.parameters()), "trimmer": []}
        trim = list(self.trimmer.parameters())
        if self.trimmer_classifier is None:
            trim += list(self.classifier.parameters())
        else:
            trim += list(self.trimmer_classifier.parameters())
            ident += list(self.classifier.parameters())
        return {"identifier": ident, "trimmer": trim}
