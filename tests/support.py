"""What several test files share: the shipped workflows and fast settings for the job websocket."""

from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
#: ``JobStream`` options that keep fault tests short: reconcile after 0.25 s of silence, give up on a server
#: unreachable for 1 s. Every test job ends in well under a second on the emulator, so none of them hits these by
#: accident; a socket that cannot connect within ``connect_timeout`` is only a slower path (reconciliation).
FAST_STREAM = {"silence_timeout": 0.25, "connect_timeout": 1.0, "unreachable_timeout": 1.0, "fetch_deadline": 5.0}
#: Real seconds per Discord second of rate limits in the whole-bot tests (``tests/conftest.py`` applies it).
E2E_DISCORD_TIME_SCALE = 0.1
