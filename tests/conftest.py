"""Shared test setup: the two loopback test peers are pytest plugins of their own."""

pytest_plugins = [
    "tests.peers.discord.fixtures",
    "tests.peers.comfyui.fixtures",
]
