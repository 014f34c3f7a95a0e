"""Image-quality metrics: protocol-exact PSNR/SSIM and LPIPS-VGG."""

from esrgan.metrics.lpips import LPIPS, LPIPS_LAYERS
from esrgan.metrics.psnr_ssim import psnr, rgb_to_y, ssim, to_uint8_levels

__all__ = ["LPIPS", "LPIPS_LAYERS", "psnr", "rgb_to_y", "ssim", "to_uint8_levels"]
