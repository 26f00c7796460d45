"""Privacy-preserving exports of reporting data."""
