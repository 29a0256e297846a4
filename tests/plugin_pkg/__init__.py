"""A user's own package, as the plugin tests name it: targets from outside ganrun."""
