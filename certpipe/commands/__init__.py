"""Subcommands: each module has ``register(subparsers, common)`` and ``main(args) -> int``.

cli.py imports a module only when its command runs, so ``certpipe --help``
and an up-to-date run load no more than they need.
"""

# Command name -> (module, one-line help). Order is the order in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("certpipe.commands.run", "run a pipeline"),
    "validate": ("certpipe.commands.validate", "check pipeline files without running them"),
    "inspect": ("certpipe.commands.inspect", "show what certificate, key, request and pkcs#12 files contain"),
    "match": ("certpipe.commands.match", "find the private key (or request) that fits a certificate"),
    "schema": ("certpipe.commands.schema", "print the pipeline JSON Schema or its reference"),
    "init": ("certpipe.commands.init", "write a commented starter pipeline"),
    "plan": ("certpipe.commands.plan",
             "list the steps with their openssl command lines and what a run would do"),
    "script": ("certpipe.commands.script",
               "print a POSIX shell script that runs the pipeline with plain openssl"),
    "pfx-check": ("certpipe.commands.pfx_check",
                  "show a .pfx file's algorithms and whether a target imports it"),
}
