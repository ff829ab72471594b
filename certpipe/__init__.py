"""certpipe: checked, repeatable OpenSSL certificate pipelines."""

__version__ = "0.1.0"
