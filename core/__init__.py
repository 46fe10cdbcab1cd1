"""Cross-cutting pieces every layer may use: settings, the clock and domain errors."""
