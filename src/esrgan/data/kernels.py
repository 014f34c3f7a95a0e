"""Blur kernels of the real-world degradation model, each a small pure function a test can measure.

Anisotropic Gaussian and generalised-Gaussian kernels come from Albumentations' ``AdvancedBlur`` and sinc
(ringing) kernels from its ``RingingOvershoot``; what no library draws is here: isotropic kernels of the
generalised and plateau shapes (AdvancedBlur draws the two sigmas independently, so it cannot tie them)
and the plateau family, ``1 / (1 + d^beta)``, which Real-ESRGAN added. All kernels are float32, odd-sized,
centred and sum to 1.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

KernelShape = Literal["gaussian", "generalized", "plateau"]


def sigma_matrix(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Covariance of a Gaussian with standard deviations ``sigma_x``/``sigma_y`` along axes rotated by
    ``theta`` radians (counter-clockwise from the x axis, image x to the right, y down)."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T


def bivariate_kernel(
    size: int,
    *,
    sigma_x: float,
    sigma_y: float,
    theta: float = 0.0,
    beta: float = 1.0,
    shape: KernelShape = "gaussian",
) -> np.ndarray:
    """A ``size`` x ``size`` kernel, ``k[y, x]``, of squared Mahalanobis distance ``d`` from the centre:

    - ``gaussian``: ``exp(-d / 2)``;
    - ``generalized``: ``exp(-0.5 * d^beta)`` (beta 1 is the Gaussian, below 1 heavier tails, above 1 a
      flatter top);
    - ``plateau``: ``1 / (1 + d^beta)`` (flat top, heavy tails).
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be > 0, got {sigma_x}, {sigma_y}")
    if beta <= 0:
        raise ValueError(f"kernel beta must be > 0, got {beta}")
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], axis=-1)
    inv = np.linalg.inv(sigma_matrix(sigma_x, sigma_y, theta))
    d = np.einsum("...i,ij,...j->...", grid, inv, grid)
    if shape == "gaussian":
        k = np.exp(-0.5 * d)
    elif shape == "generalized":
        k = np.exp(-0.5 * np.power(d, beta))
    elif shape == "plateau":
        k = 1.0 / (1.0 + np.power(d, beta))
    else:
        raise ValueError(f"unknown kernel shape {shape!r}")
    return (k / k.sum()).astype(np.float32)


def kernel_spread(kernel: np.ndarray) -> tuple[float, float, float]:
    """Measured (sigma along the major axis, sigma along the minor axis, major-axis angle in radians in
    [0, pi)) of a kernel's second moments: what a test compares with the requested shape."""
    half = kernel.shape[0] // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    k = kernel.astype(np.float64) / kernel.sum()
    cov = np.array([[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]])
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    angle = math.atan2(major[1], major[0]) % math.pi
    return math.sqrt(values[1]), math.sqrt(max(values[0], 0.0)), angle
