"""The Discord side: the nextcord client, its commands, and pure renderers of what users see."""
