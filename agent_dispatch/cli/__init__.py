"""The agent-dispatch command line."""
