"""One module per command; each registers itself on ``envsetup.cli.app`` when imported."""

COMMANDS = ["doctor", "plan", "install", "verify", "compat_cmd", "fleet"]
