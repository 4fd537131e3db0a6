"""Convolution, dilated convolution and max pooling computed by hand on small matrices (report 001-t).

Plain numpy loops that follow the textbook definition, so a worked example can be checked line
by line. Images are H x W or H x W x C (channels last, as the report writes them); a filter is
k x k or k x k x C. As in deep-learning libraries the "convolution" is a cross-correlation (the
filter is not flipped) and a multi-channel filter sums over the channels. Padding is zeros.
"""
from __future__ import annotations

import numpy as np

from cnnlab.models.receptive import conv_output_size


def _as_hwc(array, what: str) -> np.ndarray:
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{what} must be H x W or H x W x C, got shape {a.shape}")
    return a


def convolve(image, kernel, stride: int = 1, padding: int = 0, dilation: int = 1,
             per_channel: bool = False) -> np.ndarray:
    """out[i, j] = sum over u, v, c of image[i*s + u*d - p, j*s + v*d - p, c] * kernel[u, v, c].

    ``per_channel=True`` returns H' x W' x C, the contribution of each channel (their sum over the
    last axis is the result), to show the "9 + 18 + 18" of a worked example.
    """
    img, ker = _as_hwc(image, "image"), _as_hwc(kernel, "kernel")
    if ker.shape[2] not in (1, img.shape[2]):
        raise ValueError(f"kernel has {ker.shape[2]} channels, the image {img.shape[2]}: they must match")
    (h, w, channels), (kh, kw) = img.shape, ker.shape[:2]
    out_h = conv_output_size(h, kh, stride, padding, dilation)
    out_w = conv_output_size(w, kw, stride, padding, dilation)
    padded = np.zeros((h + 2 * padding, w + 2 * padding, channels))
    padded[padding:padding + h, padding:padding + w] = img
    out = np.zeros((out_h, out_w, channels))
    for i in range(out_h):
        for j in range(out_w):
            # the dilated window: every d-th pixel of a d(k-1)+1 wide patch
            window = padded[i * stride: i * stride + dilation * (kh - 1) + 1: dilation,
                            j * stride: j * stride + dilation * (kw - 1) + 1: dilation]
            out[i, j] = (window * ker).sum(axis=(0, 1))
    return out if per_channel else out.sum(axis=2)


def max_pool(image, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Max over size x size windows moved by ``stride`` (default: ``size``), channel by channel;
    the result keeps the image's layout (H' x W' or H' x W' x C)."""
    img = _as_hwc(image, "image")
    stride = size if stride is None else stride
    out_h, out_w = conv_output_size(img.shape[0], size, stride), conv_output_size(img.shape[1], size, stride)
    out = np.zeros((out_h, out_w, img.shape[2]))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = img[i * stride:i * stride + size, j * stride:j * stride + size].max(axis=(0, 1))
    return out[:, :, 0] if np.asarray(image).ndim == 2 else out


__all__ = ["conv_output_size", "convolve", "max_pool"]
