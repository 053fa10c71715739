"""timm backbones as retrieval trunks (`arch: timm/<name>`): a feature map for GeM, or the model's own
CLS token or pooled output; never downloaded (weights come from a local file or the local Hugging Face cache)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.data.dataset import IMAGENET_MEAN, IMAGENET_STD
from pipeline.errors import RdistillError
from pipeline.models.state import load_state_dict, load_strict

PREFIX = "timm/"
POOLS = ("gem", "token", "model")


def is_timm(arch: str) -> bool:
    """Whether `arch` names a timm model (timm/<name>)."""
    return arch.startswith(PREFIX)


class TimmTrunk(nn.Module):
    """A timm model giving, for pool `gem`, a feature map (B, C, H, W) (a transformer's patch tokens as a
    (B, C, N, 1) map); for `token` its first (CLS) token and for `model` its own pooled output, as (B, C).

    Inputs arrive normalised with ImageNet statistics (as every rdistill loader gives them) and are
    renormalised to the statistics the model was trained with (e.g. 0.5 / 0.5 for many transformers).
    """

    def __init__(self, arch: str, pool: str = "gem"):
        super().__init__()
        import timm  # imported here: torchvision-only runs never pay for it

        name = arch.removeprefix(PREFIX)
        if pool not in POOLS:
            raise RdistillError(f"architecture {arch}: unknown pool {pool!r} (known: {', '.join(POOLS)})")
        if not timm.is_model(name):
            raise RdistillError(f"unknown architecture {arch!r}: timm has no model {name!r}")
        kwargs = {"num_classes": 0} if pool == "model" else {"num_classes": 0, "global_pool": ""}
        try:  # transformers take any input size (multi-scale extraction): position embedding resized, input padded
            self.model = timm.create_model(name, pretrained=False, dynamic_img_size=True, dynamic_img_pad=True,
                                           **kwargs)
        except TypeError:
            self.model = timm.create_model(name, pretrained=False, **kwargs)
        self.pool = pool
        cfg = self.model.pretrained_cfg
        mean, std = torch.tensor(cfg.get("mean", IMAGENET_MEAN)), torch.tensor(cfg.get("std", IMAGENET_STD))
        # x_model = (x · std_in + mean_in − mean) / std, per channel
        self.register_buffer("scale", (torch.tensor(IMAGENET_STD) / std).view(1, 3, 1, 1))
        self.register_buffer("shift", ((torch.tensor(IMAGENET_MEAN) - mean) / std).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.scale + self.shift
        if self.pool == "model":
            return self.model(x)
        features = self.model.forward_features(x)
        if features.ndim == 3:  # transformer tokens (B, N, C)
            if self.pool == "token":
                return features[:, 0]
            prefix = getattr(self.model, "num_prefix_tokens", 0)
            return features[:, prefix:].transpose(1, 2).unsqueeze(-1)
        if self.pool == "token":
            raise RdistillError(f"timm/{self.model.default_cfg.get('architecture')}: pool token needs a transformer "
                                f"(a CNN has no CLS token); use gem or model")
        return features


def timm_state(path: Path) -> dict:
    """A state_dict from a .safetensors or .pt/.pth file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for a corrupt file
            raise RdistillError(f"{path}: not a loadable safetensors file ({exc})".splitlines()[0]) from None
    return load_state_dict(path)


def cached_pretrained(trunk: TimmTrunk, arch: str) -> Path:
    """The model's default pretrained weights in the local Hugging Face cache; never downloads."""
    from huggingface_hub import try_to_load_from_cache

    repo = trunk.model.pretrained_cfg.get("hf_hub_id")
    if not repo:
        raise RdistillError(f"{arch}: timm names no Hugging Face weights for it; give a state_dict or safetensors file")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    raise RdistillError(f"{arch}: weights {repo} are not in the local Hugging Face cache; rdistill never downloads: "
                        f"place them there (huggingface-cli download {repo}) or give a file")


def load_timm_weights(trunk: TimmTrunk, state: dict, source: str) -> None:
    """Fill the timm model from a timm state_dict, leaving out its classifier (the trunk has none)."""
    own = trunk.model.state_dict()
    classifier = trunk.model.pretrained_cfg.get("classifier") or "head"
    classifiers = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    state = {k: v for k, v in state.items() if k in own or not k.startswith(tuple(classifiers))}
    load_strict(trunk.model, state, source)
