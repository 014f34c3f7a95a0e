"""Shipped int8 calibration crops (data only; see README.md)."""
