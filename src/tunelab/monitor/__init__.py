"""tunelab.monitor: system resource sampling (psutil, NVML when present)."""

from tunelab.monitor.resources import gpu_stats, recent_samples, record_sample, sample_resources

__all__ = ["gpu_stats", "recent_samples", "record_sample", "sample_resources"]
