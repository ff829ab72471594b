"""Subcommands: each module has ``register(subparsers, common)`` and ``main(args) -> int``.

cli.py imports a module only when its command runs, so ``certpipe --help``
and an up-to-date run load no more than they need.
"""

# Command name -> (module, one-line help). Order is the order in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("certpipe.commands.run", "run a pipeline"),
    "validate": ("certpipe.commands.validate", "check pipeline files without running them"),
    "inspect": ("certpipe.commands.inspect", "show what certificate, key, CSR and PFX files hold"),
    "match": ("certpipe.commands.match", "find the private key or CSR that fits a certificate"),
}
