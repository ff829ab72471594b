"""Name the files that are not certificate material, so errors can say what they are.

Admins hand over ZIP archives from the CA's portal, HTML error pages saved
in place of a download, Java keystores, SSH and PuTTY keys and the text
output of ``openssl x509 -text``. Each gets a description and a hint.
"""

from __future__ import annotations

import json
import re

# Leading bytes of binary formats, with a description and what to do instead.
_MAGIC = [
    (b"PK\x03\x04", "a ZIP archive",
     "unpack it and give the certificate files inside"),
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it first"),
    (b"%PDF", "a PDF document", "ask the CA for the certificate file itself (.cer, .crt or .p7b)"),
    (b"\xfe\xed\xfe\xed", "a Java keystore (JKS)",
     "convert it with 'keytool -importkeystore -deststoretype PKCS12' and give the .p12"),
    (b"\xce\xce\xce\xce", "a Java keystore (JCEKS)",
     "convert it with 'keytool -importkeystore -deststoretype PKCS12' and give the .p12"),
    (b"\xd0\xcf\x11\xe0", "a Microsoft Office document (OLE2)",
     "save the certificate from it as a .cer file"),
]

_SSH_PUBLIC_RE = re.compile(r"^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp\d+) AAAA")
_OPENSSL_TEXT_RE = re.compile(r"^\s*Certificate:\s*\n\s*Data:\s*\n", re.MULTILINE)
_MAIL_HEADER_RE = re.compile(
    r"(?i)(mime-version|content-type|from|to|subject|date|message-id|received|return-path):"
)
_CSR_TEXT_RE = re.compile(r"^\s*Certificate Request:\s*\n\s*Data:\s*\n", re.MULTILINE)


def describe_binary(raw: bytes) -> tuple[str, str] | None:
    """Return (what the file is, what to do) for a known binary format, or None."""
    for magic, what, hint in _MAGIC:
        if raw.startswith(magic):
            return what, hint
    return None


def describe_text(text: str) -> tuple[str, str] | None:
    """Return (what the file is, what to do) for a known text format, or None."""
    stripped = text.strip()
    head = stripped[:512].lower()
    if head.startswith("<") or "<html" in head or "<!doctype" in head:
        return ("an HTML or XML page (often an error page saved instead of the download)",
                "download the file again and check that it is the certificate itself")
    if stripped.startswith("PuTTY-User-Key-File-"):
        return ("a PuTTY private key (.ppk), an SSH key format",
                "a TLS key must be PEM or DER; export the key in OpenSSH or PEM form with "
                "puttygen if it is the right one")
    if _SSH_PUBLIC_RE.match(stripped):
        return ("an SSH public key", "TLS needs an X.509 certificate, not an SSH key")
    if _OPENSSL_TEXT_RE.search(text):
        return ("the text form of a certificate ('openssl x509 -text' output) without its "
                "PEM block", "save the certificate with its BEGIN/END lines (add -out or drop "
                "-noout)")
    if _CSR_TEXT_RE.search(text):
        return ("the text form of a certificate request ('openssl req -text' output) without "
                "its PEM block", "save the request with its BEGIN/END lines")
    if _MAIL_HEADER_RE.match(stripped):
        return ("an e-mail message (MIME)",
                "save the certificate attachment from it and give that file")
    if re.match(r"(?m)^dn: ", stripped):
        return ("an LDIF directory export", "export the certificate itself from the directory")
    if stripped[:1] in "{[":
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return ("a JSON document without a PEM block",
                    "take the certificate out of the JSON field and save it as a .pem file")
    return None


# PEM labels that are not X.509 material, with a hint for each.
FOREIGN_LABELS = {
    "OPENSSH PRIVATE KEY": "an OpenSSH private key; if it is the right key, convert it with "
                           "'ssh-keygen -p -m PKCS8 -f FILE' (this rewrites FILE in place)",
    "SSH2 PUBLIC KEY": "an SSH public key",
    "PGP PUBLIC KEY BLOCK": "an OpenPGP public key",
    "PGP PRIVATE KEY BLOCK": "an OpenPGP private key",
    "PGP MESSAGE": "an OpenPGP message",
    "PGP SIGNATURE": "an OpenPGP signature",
}


def foreign_label_hint(label: str) -> str | None:
    return FOREIGN_LABELS.get(label.upper())
