"""Sample partner apps that run against the sandbox (see README.md). Not part of the platform."""
