"""send-patches: pre-flight checks, recipients, the git send-email run and the record of what was sent."""
