"""The two networks of a training run: built from a base model (or new), their optimisers, one
training step, the checkpoint's state, validation, and the model folder at the end.

:func:`~.loop.iter_fit` drives a :class:`RunNetworks` step by step; this module holds what the
loop does to the networks, so the loop itself reads as its named steps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..models import (
    DENDRITE_DEFAULTS,
    SPINE_DEFAULTS,
    ModelCard,
    NetworkCard,
    build_dendrite_model,
    build_spine_model,
    load_models,
    save_models,
    trunk_modules,
    widen_input_planes,
)
from .config import NonFiniteLossError, TrainConfig
from .losses import dendrite_loss

logger = logging.getLogger(__name__)


def _default_card(cfg: TrainConfig) -> ModelCard:
    planes = {"input_planes": cfg.input_planes} if (cfg.input_planes or 1) > 1 else {}
    return ModelCard(
        name=cfg.model_name,
        version=cfg.model_version,
        pixel_size_um=cfg.pixel_size_um,
        spines=NetworkCard(
            "maskrcnn_resnet18_fpn_lite",
            "spines.safetensors",
            "",
            {**SPINE_DEFAULTS, **planes},
            ("spine",),
        ),
        dendrites=NetworkCard(
            "fcn_resnet18_fpn_lite",
            "dendrites.safetensors",
            "",
            {**DENDRITE_DEFAULTS, **planes},
            ("background", "dendrite"),
        ),
    )


def run_input_planes(requested: int | None, base: ModelCard | str | Path | None) -> int:
    """Planes the networks of a training run see: ``requested`` (1 or 3), else the base
    model's (a card or a model folder), else 1. Sources that draw from stacks give neighbouring
    planes when this is above 1."""
    if requested is not None:
        return requested
    if base is None:
        return 1
    return (base if isinstance(base, ModelCard) else ModelCard.load(Path(base))).input_planes


def build_networks(cfg: TrainConfig) -> tuple[ModelCard, torch.nn.Module, torch.nn.Module]:
    """The card and the (spine, dendrite) networks a run starts from: the base model's weights,
    widened to the run's input planes where asked, or new networks with the default card."""
    if not cfg.base_model:
        card = _default_card(cfg)
        spines = build_spine_model(card.spines.config)
        return card, spines, build_dendrite_model(card.dendrites.config)
    base = load_models(cfg.base_model, device="cpu")
    card = base.card
    spines = build_spine_model(card.spines.config)
    dendrites = build_dendrite_model(card.dendrites.config)
    spines.load_state_dict(base.spines.state_dict())
    dendrites.load_state_dict(base.dendrites.state_dict())
    wanted = run_input_planes(cfg.input_planes, card)
    if wanted == card.input_planes:
        return card, spines, dendrites
    if card.input_planes != 1:
        raise InputError(
            f"the base model takes {card.input_planes} input planes; only a 1-plane model can "
            f"be trained further with {wanted}"
        )
    widen_input_planes(spines, wanted)
    widen_input_planes(dendrites, wanted)
    return card.with_input_planes(wanted), spines, dendrites


def set_training_mode(net: torch.nn.Module, training: bool, freeze_norm: bool = False) -> None:
    """Put ``net`` in training (or evaluation) mode; with ``freeze_norm`` its BatchNorm layers
    stay in evaluation mode, normalising with (and keeping) their running statistics."""
    net.train(training)
    if training and freeze_norm:
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _cpu_copy(value: Any) -> Any:
    """Tensors of a (nested) state dict copied to the CPU, so checkpoints load anywhere."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


class RunNetworks:
    """The two networks of a run with their optimisers, on the run's device: one training
    step, the checkpoint's state, validation, and the model folder at the end."""

    def __init__(
        self,
        cfg: TrainConfig,
        card: ModelCard,
        spines: torch.nn.Module,
        dendrites: torch.nn.Module,
        device: torch.device,
        state: dict[str, Any] | None,
    ) -> None:
        self.cfg, self.card, self.device = cfg, card, device
        self.spines, self.dendrites = spines, dendrites
        self.precision = training_precision(cfg.precision, device)
        self.train_s = cfg.which in ("both", "spines")
        self.train_d = cfg.which in ("both", "dendrites")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: the fastest convolutions
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if state:
            self._load_weights(state)
        self.frozen = _frozen_trunks(cfg.layers, spines, dendrites)
        spines.to(device)
        dendrites.to(device)
        # optimisers over the parameters on their device: a resumed state is cast to it on loading
        self.params_s = [p for p in spines.parameters() if p.requires_grad]
        self.params_d = [p for p in dendrites.parameters() if p.requires_grad]
        self.opt_s = torch.optim.AdamW(self.params_s, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.params_d, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if state:
            self.opt_s.load_state_dict(state["opt_spines"])
            self.opt_d.load_state_dict(state["opt_dendrites"])
            logger.info("resumed from %s at step %d", cfg.work_dir, int(state["step"]))
        self.train_mode()

    def _load_weights(self, state: dict[str, Any]) -> None:
        try:
            self.spines.load_state_dict(state["spines"])
            self.dendrites.load_state_dict(state["dendrites"])
        except KeyError as exc:
            raise InputError(
                f"cannot resume from the checkpoint in '{Path(self.cfg.work_dir)}': it holds no "
                f"{exc} weights; train without resuming (--no-resume) or in a new --work folder"
            ) from None
        except RuntimeError as exc:  # other shapes, e.g. another number of input planes
            first = str(exc).strip().splitlines()[-1].strip()
            raise InputError(
                f"the checkpoint in '{Path(self.cfg.work_dir)}' belongs to networks of another "
                f"shape ({first}); resume with the settings it was started with, or start in a "
                "new --work folder"
            ) from None

    def train_mode(self) -> None:
        set_training_mode(self.spines, self.train_s, self.cfg.freeze_norm)
        set_training_mode(self.dendrites, self.train_d, self.cfg.freeze_norm)
        for module in self.frozen:  # its statistics stay the base model's too
            module.eval()

    def train_step(self, batch: tuple, step: int, lr: float) -> dict[str, float]:
        """One optimiser step of each trained network on ``batch``; returns the losses."""
        images, dendrite_t, targets = batch
        losses: dict[str, float] = {}
        if self.train_s:
            with self._autocast():
                loss_dict = self.spines(list(images), targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"spine loss is not finite at step {step}: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
                )
            _descend(self.opt_s, self.params_s, loss, lr)
            losses.update({k: v.item() for k, v in loss_dict.items()})
            losses["spines"] = loss.item()
        if self.train_d:
            with self._autocast():
                logits = self.dendrites(images)["out"]
            loss_d = dendrite_loss(logits.float(), dendrite_t)
            if not torch.isfinite(loss_d):
                raise NonFiniteLossError(f"dendrite loss is not finite at step {step}")
            _descend(self.opt_d, self.params_d, loss_d, lr)
            losses["dendrites"] = loss_d.item()
        return losses

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

    def checkpoint(self, step: int, elapsed_s: float) -> dict[str, Any]:
        """Everything a resumed run needs, as CPU tensors (loads on any device)."""
        return {
            "step": step,
            "spines": _cpu_copy(self.spines.state_dict()),
            "dendrites": _cpu_copy(self.dendrites.state_dict()),
            "opt_spines": _cpu_copy(self.opt_s.state_dict()),
            "opt_dendrites": _cpu_copy(self.opt_d.state_dict()),
            "config": asdict(self.cfg),
            "elapsed_s": elapsed_s,
        }

    def validate(self, validator: Callable[[Any], dict[str, float]]) -> dict[str, float]:
        """``validator``'s scores of the networks in evaluation mode; training mode after."""
        from ..models import LoadedModels

        self.spines.eval()
        self.dendrites.eval()
        try:
            folder = Path(self.cfg.output_model)
            held_out = LoadedModels(self.card, folder, self.spines, self.dendrites, self.device)
            with torch.inference_mode():
                return validator(held_out)
        finally:
            self.train_mode()

    def save(
        self,
        step: int,
        elapsed: float,
        stopped: bool,
        last_validation: dict[str, float],
        provenance: dict[str, Any] | None,
        base_validation: dict[str, float] | None = None,
    ) -> None:
        """Write the model folder: the networks (on the CPU) and a card with the run's
        provenance and scores (``validation``: those of the weights saved, at ``step``)."""
        cfg, card = self.cfg, self.card
        self.spines.eval().cpu()
        self.dendrites.eval().cpu()
        prov = _provenance(cfg, card, step, elapsed, self.device, provenance)
        metrics: dict[str, Any] = {}  # a base model's scores do not describe the new weights
        if cfg.validate_images > 0 and not stopped:
            metrics = {"validation_generator_2d": _validate(cfg, card, self.spines, self.dendrites)}
        if last_validation:
            metrics["validation"] = {"step": step, **last_validation}
        if base_validation:
            metrics["validation_base"] = dict(base_validation)
        out_card = replace(
            card, name=cfg.model_name, version=cfg.model_version, provenance=prov, metrics=metrics
        )
        save_models(Path(cfg.output_model), out_card, self.spines, self.dendrites)


def _frozen_trunks(layers: str, *nets: torch.nn.Module) -> list[torch.nn.Module]:
    """The trunk modules ``layers`` keeps ("heads": each network's trunk; "upper": its stem and
    first stage; "all": none), their weights set not to learn."""
    if layers == "all":
        return []
    trunks = [m for net in nets for m in trunk_modules(net, lower=layers == "upper")]
    for module in trunks:
        module.requires_grad_(False)
    return trunks


def training_precision(precision: str, device: torch.device) -> torch.dtype:
    """The forward arithmetic of a run: torch.bfloat16 or torch.float32 for ``precision``
    ("auto", "float32", "bfloat16") on ``device``; "auto" picks bfloat16 only where the device
    computes it natively (elsewhere it is emulated and slower than float32)."""
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    has = any(getattr(torch.cpu, name, lambda: False)() for name in native)
    return torch.bfloat16 if has else torch.float32


def _descend(opt: torch.optim.Optimizer, params: list, loss: torch.Tensor, lr: float) -> None:
    """One AdamW step at learning rate ``lr`` with gradients clipped at norm 10."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 10.0)
    opt.step()


def _provenance(
    cfg: TrainConfig,
    card: ModelCard,
    step: int,
    elapsed: float,
    device: torch.device,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The new card's provenance: base model, networks trained, steps, time, device, data."""
    # the base model's record describes the base, not this run: keep it, nested, not merged
    prov: dict[str, Any] = (
        {"base_model_provenance": dict(card.provenance)} if cfg.base_model else {}
    )
    identity = {
        "name": card.name,
        "version": card.version,
        "weights_sha256": {"spines": card.spines.sha256, "dendrites": card.dendrites.sha256},
    }
    prov.update(
        {
            "base_model": cfg.base_model,
            "base_model_identity": identity if cfg.base_model else None,
            "trained_networks": cfg.which,
            "steps": step,
            "train_seconds": round(elapsed, 1),
            "train_device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "train_precision": str(training_precision(cfg.precision, device)).split(".")[-1],
            "data": cfg.data_description,
            "config": asdict(cfg),
            "torch": torch.__version__,
            **(extra or {}),
        }
    )
    return prov


def _validate(
    cfg: TrainConfig, card: ModelCard, spines: torch.nn.Module, dendrites: torch.nn.Module
) -> dict[str, Any]:
    """Scores of the trained networks on held-out generator images (seeds never trained on)."""
    from ..evaluation import evaluate_generator
    from ..models import LoadedModels

    models = LoadedModels(card, Path(cfg.output_model), spines, dendrites, torch.device("cpu"))
    return evaluate_generator(models, cfg.validate_images)
