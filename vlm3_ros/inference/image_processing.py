"""Qwen2-VL / Qwen3-VL image processing on the model's device: unified uint8 images in,
``pixel_values`` and ``image_grid_thw`` out, with the checkpoint processor's arithmetic.

The checkpoint's processor (``Qwen2VLImageProcessorPil`` where torchvision is missing) resizes with
PIL on the CPU and hands the model float32 ``pixel_values`` (4 bytes per value, twice over for
the temporal patch), tens of MB for a TUM depth frame. Here the uint8 image (3.4 MB) goes to
the device once and everything after the resize runs there. The steps and their order are the
processor's:

1. grid size: :func:`smart_resize` (each side rounded to ``patch_size * merge_size`` pixels,
   the area kept within ``size.shortest_edge`` .. ``size.longest_edge``);
2. resize to that size with PIL's bicubic: on the CPU PIL itself on the uint8 image, as the
   processor does (bit-identical values); on CUDA torch's antialiased bicubic, the same kernel
   (a = -0.5, widened when shrinking) computed in float on the device, rounded to uint8;
3. rescale (``rescale_factor``) and normalise (``image_mean``, ``image_std``), fused into one
   multiply-add on the device;
4. patchify: (merge row, merge col, row in merge, col in merge) patch order, channels, the
   temporal patch (the still image repeated ``temporal_patch_size`` times), pixel row, pixel column.

On the CPU the values equal the processor's (float rounding aside); on CUDA they differ from PIL's
by the resize's float arithmetic (PIL rounds to 8 bits between its two passes): at most 3 grey
levels, 0.12 on average on a TUM depth frame. test/model/test_image_processing.py checks both on
the bundled frames, and the tiny model's greedy tokens; grid, token count and layout are identical.
``TransformersConfig.image_processing = "pil"`` keeps the checkpoint's processor as the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The processor's grid size for an image: each side a multiple of ``factor`` nearest the
    original, then scaled to keep the area within [min_pixels, max_pixels] (same arithmetic as
    transformers' qwen2_vl ``smart_resize``)."""
    aspect = max(height, width) / min(height, width)
    if aspect > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {aspect}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class ProcessorParams:
    """What the arithmetic needs from a checkpoint's image processor (its preprocessor_config)."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int
    max_pixels: int
    rescale_factor: float
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def of(cls, image_processor: Any) -> ProcessorParams:
        size = dict(getattr(image_processor, "size", {}) or {})
        min_pixels = size.get("shortest_edge") or getattr(image_processor, "min_pixels", None)
        max_pixels = size.get("longest_edge") or getattr(image_processor, "max_pixels", None)
        if not min_pixels or not max_pixels:
            raise ValueError(f"the image processor gives no pixel budget (size={size})")
        if not getattr(image_processor, "do_rescale", True) or not getattr(image_processor, "do_normalize", True):
            raise ValueError("device image processing assumes do_rescale and do_normalize (as every Qwen3-VL "
                             "checkpoint has); use image_processing: pil")
        return cls(patch_size=int(image_processor.patch_size), merge_size=int(image_processor.merge_size),
                   temporal_patch_size=int(image_processor.temporal_patch_size), min_pixels=int(min_pixels),
                   max_pixels=int(max_pixels), rescale_factor=float(image_processor.rescale_factor),
                   image_mean=tuple(float(v) for v in image_processor.image_mean),   # type: ignore[arg-type]
                   image_std=tuple(float(v) for v in image_processor.image_std))     # type: ignore[arg-type]

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        return smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)


class DeviceImageProcessor:
    """``pixel_values`` and ``image_grid_thw`` for RGB uint8 images, computed on ``device``."""

    def __init__(self, params: ProcessorParams, device: Any, resize_with: str = "") -> None:
        """``resize_with``: "pil" (the CPU default) or "torch" (the CUDA default; tests run it on
        the CPU too)."""
        import torch

        self.params = params
        self.device = torch.device(device)
        self.resize_with = resize_with or ("pil" if self.device.type == "cpu" else "torch")
        if self.resize_with not in ("pil", "torch"):
            raise ValueError(f"resize_with must be pil or torch, got {resize_with!r}")
        mean = torch.tensor(params.image_mean, dtype=torch.float32, device=self.device)
        std = torch.tensor(params.image_std, dtype=torch.float32, device=self.device)
        # (x * rescale - mean) / std  ==  x * scale + shift, per channel
        self._scale = (params.rescale_factor / std).view(1, 1, 1, 1, -1, 1, 1)
        self._shift = (-mean / std).view(1, 1, 1, 1, -1, 1, 1)

    def resize(self, image: np.ndarray) -> Any:
        """The image at the processor's grid size, as a uint8 (H, W, 3) tensor on the device
        (CUDA: uploaded first, resized there)."""
        import torch

        h, w = image.shape[:2]
        gh, gw = self.params.grid_size(h, w)
        if self.resize_with == "pil":
            # PIL's bicubic on the uint8 image, as the processor does: bit-identical to it. The
            # processor's cost is not this resize but its float32 numpy passes (patchify below).
            out = image
            if (gh, gw) != (h, w):
                from PIL import Image

                out = np.array(Image.fromarray(np.ascontiguousarray(image)).resize((gw, gh), Image.BICUBIC))
            return torch.from_numpy(np.ascontiguousarray(out)).to(self.device)
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device, non_blocking=True)
        if (gh, gw) == (h, w):
            return t
        x = t.permute(2, 0, 1).unsqueeze(0).float()
        x = torch.nn.functional.interpolate(x, size=(gh, gw), mode="bicubic", antialias=True, align_corners=False)
        return x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)

    def patchify(self, resized: Any) -> tuple[Any, tuple[int, int, int]]:
        """(pixel_values (gh * gw, C * T * p * p) float32, (1, gh, gw)) of one resized uint8 image."""
        import torch

        p, m, tp = self.params.patch_size, self.params.merge_size, self.params.temporal_patch_size
        h, w, c = resized.shape
        gh, gw = h // p, w // p
        # uint8 first: the permuting copy moves 1 byte per value instead of 4
        x = resized.reshape(gh // m, m, p, gw // m, m, p, c).permute(0, 3, 1, 4, 6, 2, 5)  # (H/m, W/m, m, m, C, p, p)
        x = x.unsqueeze(5)                                                                # temporal axis
        out = torch.empty((gh // m, gw // m, m, m, c, tp, p, p), dtype=torch.float32, device=resized.device)
        # the still image repeated over the temporal patch, rescaled and normalised in one pass
        torch.addcmul(self._shift.unsqueeze(-3), x.to(torch.float32), self._scale.unsqueeze(-3),
                      out=out[:, :, :, :, :, :1])
        if tp > 1:
            out[:, :, :, :, :, 1:] = out[:, :, :, :, :, :1]
        return out.reshape(gh * gw, c * tp * p * p), (1, gh, gw)

    def __call__(self, images: list[np.ndarray] | tuple[np.ndarray, ...]) -> tuple[Any, Any]:
        import torch

        values, grids = [], []
        for image in images:
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
            pv, grid = self.patchify(self.resize(image))
            values.append(pv)
            grids.append(grid)
        pixel_values = values[0] if len(values) == 1 else torch.cat(values)
        return pixel_values, torch.tensor(grids, dtype=torch.long, device=self.device)


def expand_image_tokens(text: str, grids: Any, merge_size: int, image_token: str = "<|image_pad|>") -> str:
    """The chat text with each image's single placeholder token repeated once per merged patch,
    as the processor does before tokenising."""
    parts = text.split(image_token)
    if len(parts) - 1 != len(grids):
        raise ValueError(f"{len(parts) - 1} image placeholders in the text for {len(grids)} images")
    out = [parts[0]]
    for grid, rest in zip(grids, parts[1:], strict=True):
        out.append(image_token * (int(np.prod([int(g) for g in grid])) // merge_size**2))
        out.append(rest)
    return "".join(out)
