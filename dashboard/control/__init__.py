"""The WebSocket control plane: the `/ws/dashboard/` consumer, its protocol, presence and authentication."""
