"""Pieces every Kosmos service shares: errors, configuration, telemetry, the server stack."""
