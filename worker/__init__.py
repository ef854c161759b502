"""The RQ side: job functions, the Belvo client, the expiry sweeper and the worker entry point."""
