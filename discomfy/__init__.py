"""discomfy: a Discord bot that turns ComfyUI servers into a shared image and video studio."""

__version__ = "0.1.0"
