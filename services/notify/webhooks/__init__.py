"""Webhook endpoints of agency units: managed by administrators, used by the webhook sender."""
