"""What a run leaves and reads back: checkpoints (checkpoint), the networks rebuilt from one (networks),
the generator exported for sharing (export), experiment trackers (trackers) and pictures (images)."""
