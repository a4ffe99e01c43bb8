"""DeepD3's network re-implemented in PyTorch, for speed comparisons only (random weights).

Written from the published layer layout of DeepD3 (Fernholz et al. 2024; ``DeepD3_Model`` in
the ``deepd3`` package, Keras): one encoder and two decoders (dendrites, spines).

- Encoder, ``layers`` = 4 levels with ``filters * 2**i`` channels: a 1x1 convolution of the
  level's input as identity branch; 3x3 conv (no bias) + batch norm + swish; 3x3 conv (no bias)
  + batch norm, plus the identity, + swish; the result is kept for the skip connection; 2x2 max
  pooling.
- Latent: 3x3 conv + batch norm + swish with ``filters * 2**layers`` channels.
- Each decoder, per level from the deepest: 2x nearest upsampling, concatenation with the
  encoder's skip, two (3x3 conv + batch norm + swish) with ``filters * 2**(layers-1-i)``
  channels; then a 1x1 conv with bias and a sigmoid.

The "32F" models of the DeepD3 model zoo use ``filters=32``. :func:`keras_parameter_count`
counts the parameters the Keras model reports (batch norm: 4 per channel, of which 2 are
moving statistics); the PyTorch module's parameters plus its batch-norm running statistics must
give the same number (checked by ``bench_inference.py --check-deepd3``).
"""

from __future__ import annotations

import torch
from torch import nn


class _ConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if residual is not None:
            x = x + residual
        return nn.functional.silu(x)


class _EncoderLevel(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.identity = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.conv1 = _ConvBN(c_in, c_out)
        self.conv2 = _ConvBN(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x), residual=self.identity(x))


class _Decoder(nn.Module):
    def __init__(self, filters: int, layers: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        c = filters * 2**layers
        for i in range(layers):
            out = filters * 2 ** (layers - 1 - i)
            self.levels.append(nn.ModuleList([_ConvBN(c + out, out), _ConvBN(out, out)]))
            c = out
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for (conv1, conv2), skip in zip(self.levels, reversed(skips), strict=True):
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            x = conv2(conv1(torch.cat([x, skip], 1)))
        return torch.sigmoid(self.head(x))


class DeepD3UNet(nn.Module):
    """(B, 1, H, W) → dendrite and spine probability maps, each (B, 1, H, W); H, W multiples
    of 2**layers."""

    def __init__(self, filters: int = 32, layers: int = 4) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            _EncoderLevel(1 if i == 0 else filters * 2 ** (i - 1), filters * 2**i)
            for i in range(layers)
        )
        self.latent = _ConvBN(filters * 2 ** (layers - 1), filters * 2**layers)
        self.dendrites = _Decoder(filters, layers)
        self.spines = _Decoder(filters, layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.latent(x)
        return self.dendrites(x, skips), self.spines(x, skips)


def keras_parameter_count(filters: int = 32, layers: int = 4) -> int:
    """Parameters of the Keras ``DeepD3_Model(filters, layers=layers)`` summary, from its
    layer list (conv weights, conv biases where used, 4 batch-norm values per channel)."""
    total, c_in = 0, 1
    for i in range(layers):
        c = filters * 2**i
        total += c_in * c  # 1x1 identity, no bias
        total += 9 * c_in * c + 4 * c  # conv1 + BN
        total += 9 * c * c + 4 * c  # conv2 + BN
        c_in = c
    latent = filters * 2**layers
    total += 9 * c_in * latent + 4 * latent
    for _ in range(2):  # two decoders
        c = latent
        for i in range(layers):
            out = filters * 2 ** (layers - 1 - i)
            total += 9 * (c + out) * out + 4 * out
            total += 9 * out * out + 4 * out
            c = out
        total += c + 1  # 1x1 conv with bias
    return total


def torch_parameter_count(model: nn.Module) -> int:
    """Parameters plus batch-norm running statistics (what Keras counts as parameters)."""
    params = sum(p.numel() for p in model.parameters())
    stats = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d)
    )
    return params + stats
