"""The runs behind every command: what a command does, as a function of its recipe."""
