//! HR systems behind the webhooks.
