"""Password-based encryption and MAC algorithms of PKCS#12 (RFC 7292, RFC 8018, RFC 9579).

Describes an AlgorithmIdentifier in the terms ``openssl pkcs12 -info`` uses,
derives keys with the PKCS#12 KDF (RFC 7292 appendix B) or PBKDF2, verifies
the MAC and decrypts contents, so that certpipe can check a PKCS#12 file
without starting openssl.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from dataclasses import dataclass

from certpipe.artifacts import asn1
from certpipe.artifacts.asn1 import DerError, Element

# Key derivations above this count are not run, because a file may name any
# count and the PKCS#12 KDF here is pure Python: one block of one million
# iterations took 0.6 s on a 2-core AMD EPYC machine, and a 3DES container
# needs three blocks. Windows itself rejects counts above 600,000.
MAX_ITERATIONS = 2_000_000

PBES2_OID = "1.2.840.113549.1.5.13"
PBKDF2_OID = "1.2.840.113549.1.5.12"
PBMAC1_OID = "1.2.840.113549.1.5.14"

# PKCS#12 PBE (RFC 7292 appendix C): name, cipher, key bytes, IV bytes.
PKCS12_PBE = {
    "1.2.840.113549.1.12.1.1": ("pbeWithSHA1And128BitRC4", "RC4-128", 16, 0),
    "1.2.840.113549.1.12.1.2": ("pbeWithSHA1And40BitRC4", "RC4-40", 5, 0),
    "1.2.840.113549.1.12.1.3": ("pbeWithSHA1And3-KeyTripleDES-CBC", "3DES", 24, 8),
    "1.2.840.113549.1.12.1.4": ("pbeWithSHA1And2-KeyTripleDES-CBC", "2-key 3DES", 16, 8),
    "1.2.840.113549.1.12.1.5": ("pbeWithSHA1And128BitRC2-CBC", "RC2-128", 16, 8),
    "1.2.840.113549.1.12.1.6": ("pbeWithSHA1And40BitRC2-CBC", "RC2-40", 5, 8),
}

# PKCS#5 v1.5 PBES1 (RFC 8018 appendix A.3), read only to name them.
PBES1 = {
    "1.2.840.113549.1.5.1": "pbeWithMD2AndDES-CBC",
    "1.2.840.113549.1.5.3": "pbeWithMD5AndDES-CBC",
    "1.2.840.113549.1.5.4": "pbeWithMD2AndRC2-CBC",
    "1.2.840.113549.1.5.6": "pbeWithMD5AndRC2-CBC",
    "1.2.840.113549.1.5.10": "pbeWithSHA1AndDES-CBC",
    "1.2.840.113549.1.5.11": "pbeWithSHA1AndRC2-CBC",
}

# PBES2 encryption schemes: name as openssl prints it, key bytes.
PBES2_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": ("AES-128-CBC", 16),
    "2.16.840.1.101.3.4.1.22": ("AES-192-CBC", 24),
    "2.16.840.1.101.3.4.1.42": ("AES-256-CBC", 32),
    "1.2.840.113549.3.7": ("DES-EDE3-CBC", 24),
    "1.3.14.3.2.7": ("DES-CBC", 8),
    "1.2.840.113549.3.2": ("RC2-CBC", 16),
}

HMAC_PRFS = {
    "1.2.840.113549.2.7": ("hmacWithSHA1", "sha1"),
    "1.2.840.113549.2.8": ("hmacWithSHA224", "sha224"),
    "1.2.840.113549.2.9": ("hmacWithSHA256", "sha256"),
    "1.2.840.113549.2.10": ("hmacWithSHA384", "sha384"),
    "1.2.840.113549.2.11": ("hmacWithSHA512", "sha512"),
    "1.2.840.113549.2.12": ("hmacWithSHA512-224", "sha512_224"),
    "1.2.840.113549.2.13": ("hmacWithSHA512-256", "sha512_256"),
}

DIGESTS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.5": "sha512_224",
    "2.16.840.1.101.3.4.2.6": "sha512_256",
    "1.2.840.113549.2.5": "md5",
    "1.2.840.113549.2.2": "md2",
}


@dataclass(frozen=True)
class Encryption:
    """The encryption of one part of a PKCS#12 file, as read from its AlgorithmIdentifier.

    ``scheme`` is ``pkcs12-pbe``, ``pbes2``, ``pbes1``, ``none`` (stored in
    plain) or ``unknown``. ``cipher`` uses openssl's names (``3DES``,
    ``RC2-40``, ``AES-256-CBC``). ``prf`` is set for PBES2 only.
    """

    scheme: str
    name: str
    oid: str = ""
    cipher: str | None = None
    prf: str | None = None
    iterations: int | None = None
    salt: bytes = b""
    key_length: int | None = None
    iv: bytes = b""

    def describe(self) -> str:
        if self.scheme == "none":
            return "not encrypted"
        if self.scheme == "pbes2":
            text = f"PBES2 (PBKDF2 {self.prf or '?'}, {self.cipher or self.name})"
        else:
            text = self.name
        if self.iterations is not None:
            text += f", {self.iterations} iterations"
        return text

    @property
    def is_weak(self) -> bool:
        """True for 40-bit ciphers, single DES, RC4 and PKCS#5 v1.5 schemes."""
        weak = {"RC2-40", "RC4-40", "RC4-128", "DES-CBC"}
        return self.scheme == "pbes1" or (self.cipher or "") in weak


NOT_ENCRYPTED = Encryption("none", "not encrypted")


@dataclass(frozen=True)
class Mac:
    """The integrity MAC of a PKCS#12 file (RFC 7292 section 4, or PBMAC1 of RFC 9579)."""

    digest: str  # sha1, sha256, ... (for PBMAC1 the HMAC's hash)
    iterations: int
    salt: bytes
    value: bytes
    pbmac1: bool = False
    prf: str | None = None  # PBMAC1 only: the PBKDF2 PRF
    key_length: int | None = None

    def describe(self) -> str:
        name = self.digest.upper().replace("SHA", "SHA-")
        if self.pbmac1:
            return f"PBMAC1 (PBKDF2 {self.prf}, HMAC-{name}), {self.iterations} iterations"
        return f"{name}, {self.iterations} iterations"


def parse_algorithm(element: Element, what: str) -> Encryption:
    """Read an encryption AlgorithmIdentifier; unknown algorithms are named by OID."""
    items = asn1.sequence(element, what, 1)
    identifier = asn1.oid(items[0], f"{what} algorithm")
    params = items[1] if len(items) > 1 else None
    if identifier in PKCS12_PBE:
        name, cipher, _, _ = PKCS12_PBE[identifier]
        salt, count = _pbe_params(params, what)
        return Encryption("pkcs12-pbe", name, identifier, cipher, None, count, salt)
    if identifier in PBES1:
        salt, count = _pbe_params(params, what)
        return Encryption("pbes1", PBES1[identifier], identifier, None, None, count, salt)
    if identifier == PBES2_OID:
        return _pbes2(params, what)
    return Encryption("unknown", f"algorithm {identifier}", identifier)


def _pbe_params(params: Element | None, what: str) -> tuple[bytes, int]:
    if params is None:
        raise DerError(f"{what}: PBE parameters are missing")
    items = asn1.sequence(params, f"{what} parameters", 2)
    return asn1.octets(items[0], f"{what} salt"), asn1.integer(items[1], f"{what} iterations")


def _pbes2(params: Element | None, what: str) -> Encryption:
    if params is None:
        raise DerError(f"{what}: PBES2 parameters are missing")
    kdf, scheme = asn1.sequence(params, f"{what} PBES2 parameters", 2)[:2]
    kdf_items = asn1.sequence(kdf, f"{what} key derivation", 1)
    kdf_oid = asn1.oid(kdf_items[0], f"{what} key derivation")
    scheme_items = asn1.sequence(scheme, f"{what} encryption scheme", 1)
    scheme_oid = asn1.oid(scheme_items[0], f"{what} encryption scheme")
    cipher, _ = PBES2_CIPHERS.get(scheme_oid, (f"cipher {scheme_oid}", 0))
    iv = b""
    if len(scheme_items) > 1 and scheme_items[1].is_universal(asn1.OCTET_STRING):
        iv = scheme_items[1].content
    if kdf_oid != PBKDF2_OID:
        return Encryption("pbes2", "PBES2", PBES2_OID, cipher, f"KDF {kdf_oid}", None, b"",
                          None, iv)
    salt, count, key_length, prf = _pbkdf2_params(kdf_items, what)
    return Encryption("pbes2", "PBES2", PBES2_OID, cipher, prf, count, salt, key_length, iv)


def _pbkdf2_params(kdf_items: list[Element], what: str) -> tuple[bytes, int, int | None, str]:
    if len(kdf_items) < 2:
        raise DerError(f"{what}: PBKDF2 parameters are missing")
    fields = asn1.sequence(kdf_items[1], f"{what} PBKDF2 parameters", 2)
    salt = asn1.octets(fields[0], f"{what} PBKDF2 salt")
    count = asn1.integer(fields[1], f"{what} PBKDF2 iterations")
    key_length = None
    prf = "hmacWithSHA1"  # the DEFAULT of RFC 8018
    for extra in fields[2:]:
        if extra.is_universal(asn1.INTEGER):
            key_length = asn1.integer(extra, f"{what} PBKDF2 key length")
        elif extra.is_universal(asn1.SEQUENCE):
            prf_oid = asn1.oid(asn1.sequence(extra, f"{what} PBKDF2 PRF", 1)[0],
                              f"{what} PBKDF2 PRF")
            prf = HMAC_PRFS.get(prf_oid, (f"PRF {prf_oid}", ""))[0]
    return salt, count, key_length, prf


def parse_mac(element: Element) -> Mac:
    """Read MacData; an absent iteration count means 1 (its DEFAULT in RFC 7292)."""
    items = asn1.sequence(element, "MacData", 2)
    digest_info = asn1.sequence(items[0], "MAC DigestInfo", 2)
    algorithm = asn1.sequence(digest_info[0], "MAC algorithm", 1)
    digest_oid = asn1.oid(algorithm[0], "MAC algorithm")
    value = asn1.octets(digest_info[1], "MAC value")
    salt = asn1.octets(items[1], "MAC salt")
    count = asn1.integer(items[2], "MAC iterations") if len(items) > 2 else 1
    if digest_oid == PBMAC1_OID:
        return _pbmac1(algorithm, value, salt, count)
    return Mac(DIGESTS.get(digest_oid, f"digest {digest_oid}"), count, salt, value)


def _pbmac1(algorithm: list[Element], value: bytes, salt: bytes, count: int) -> Mac:
    if len(algorithm) < 2:
        raise DerError("PBMAC1 parameters are missing")
    kdf, scheme = asn1.sequence(algorithm[1], "PBMAC1 parameters", 2)[:2]
    kdf_items = asn1.sequence(kdf, "PBMAC1 key derivation", 1)
    if asn1.oid(kdf_items[0], "PBMAC1 key derivation") != PBKDF2_OID:
        return Mac("unknown", count, salt, value, pbmac1=True, prf="unknown KDF")
    kdf_salt, kdf_count, key_length, prf = _pbkdf2_params(kdf_items, "PBMAC1")
    scheme_oid = asn1.oid(asn1.sequence(scheme, "PBMAC1 MAC scheme", 1)[0], "PBMAC1 MAC scheme")
    digest = HMAC_PRFS.get(scheme_oid, ("", f"hmac {scheme_oid}"))[1]
    # RFC 9579: the MacData salt and count are ignored; PBKDF2's own count rules.
    return Mac(digest, kdf_count, kdf_salt, value, pbmac1=True, prf=prf, key_length=key_length)


# ---- key derivation ------------------------------------------------------


class DerivationRefused(Exception):
    """The file names an algorithm or iteration count that certpipe does not derive keys for."""


def _check_count(count: int | None) -> int:
    if count is None or count < 1:
        raise DerivationRefused(f"iteration count {count} is invalid")
    if count > MAX_ITERATIONS:
        raise DerivationRefused(
            f"iteration count {count} is above certpipe's limit of {MAX_ITERATIONS}"
        )
    return count


def pkcs12_kdf(digest: str, password: bytes, salt: bytes, purpose: int, count: int,
               length: int) -> bytes:
    """Derive *length* bytes with the PKCS#12 KDF (RFC 7292 appendix B.2).

    *password* is already the BMPString form with its two trailing zero bytes
    (or empty); *purpose* is 1 for keys, 2 for IVs and 3 for MAC keys.
    """
    _check_count(count)
    u = hashlib.new(digest).digest_size
    v = hashlib.new(digest).block_size
    diversifier = bytes([purpose]) * v

    def stretch(data: bytes) -> bytes:
        if not data:
            return b""
        size = v * ((len(data) + v - 1) // v)
        return (data * (size // len(data) + 1))[:size]

    block = bytearray(stretch(salt) + stretch(password))
    result = b""
    while len(result) < length:
        digest_value = hashlib.new(digest, diversifier + bytes(block)).digest()
        for _ in range(count - 1):
            digest_value = hashlib.new(digest, digest_value).digest()
        result += digest_value
        if len(result) >= length:
            break
        filler = int.from_bytes(stretch(digest_value)[:v], "big") + 1
        for start in range(0, len(block), v):
            chunk = int.from_bytes(block[start:start + v], "big") + filler
            block[start:start + v] = (chunk % (1 << (8 * v))).to_bytes(v, "big")
    return result[:length]


def bmp_password(password: bytes, form: str) -> bytes:
    """Return *password* as the PKCS#12 KDF input.

    ``utf-16`` treats the password as UTF-8 text and encodes its characters
    as UTF-16BE, as OpenSSL 1.1.0 and later and Windows do. ``bytes`` widens
    each byte to two, as LibreSSL and OpenSSL before 1.1.0 do; the two agree
    for ASCII. ``null`` is the absent password, which some writers use for
    an empty one.
    """
    if form == "null":
        return b""
    if form == "utf-16":
        return password.decode("utf-8").encode("utf-16-be") + b"\x00\x00"
    return b"".join(b"\x00" + bytes([byte]) for byte in password) + b"\x00\x00"


def password_forms(password: bytes) -> list[str]:
    """Return the KDF password forms worth trying, most likely first."""
    forms = []
    try:
        password.decode("utf-8")
        forms.append("utf-16")
    except UnicodeDecodeError:
        pass
    if not password.isascii() or not forms:
        forms.append("bytes")
    if not password:
        forms.append("null")
    return forms


def mac_matches(mac: Mac, password: bytes, form: str, data: bytes) -> bool:
    """Check the MAC over *data* (the AuthenticatedSafe octets) with one password form."""
    if mac.pbmac1:
        if mac.prf not in {name for name, _ in HMAC_PRFS.values()}:
            raise DerivationRefused(f"PBMAC1 with {mac.prf} is not supported")
        prf_hash = next(h for n, h in HMAC_PRFS.values() if n == mac.prf)
        length = mac.key_length or hashlib.new(mac.digest).digest_size
        key = hashlib.pbkdf2_hmac(prf_hash, password, mac.salt, _check_count(mac.iterations),
                                  length)
    else:
        if mac.digest not in hashlib.algorithms_available:
            raise DerivationRefused(f"MAC digest {mac.digest} is not supported")
        size = hashlib.new(mac.digest).digest_size
        key = pkcs12_kdf(mac.digest, bmp_password(password, form), mac.salt, 3,
                         mac.iterations, size)
    expected = hmac.new(key, data, mac.digest).digest()
    return hmac.compare_digest(expected, mac.value)


def decrypt(encryption: Encryption, password: bytes, form: str, data: bytes) -> bytes:
    """Decrypt *data*; raise ValueError on a wrong key, DerivationRefused when unsupported."""
    if encryption.scheme == "pkcs12-pbe":
        _, cipher_name, key_size, iv_size = PKCS12_PBE[encryption.oid]
        pw = bmp_password(password, form)
        count = _check_count(encryption.iterations)
        key = pkcs12_kdf("sha1", pw, encryption.salt, 1, count, key_size)
        iv = pkcs12_kdf("sha1", pw, encryption.salt, 2, count, iv_size) if iv_size else b""
        return _run_cipher(cipher_name, key, iv, data)
    if encryption.scheme == "pbes2":
        prf_hash = next((h for n, h in HMAC_PRFS.values() if n == encryption.prf), None)
        cipher = next(((name, size) for name, size in PBES2_CIPHERS.values()
                       if name == encryption.cipher), None)
        if prf_hash is None or cipher is None:
            raise DerivationRefused(f"{encryption.describe()} is not supported")
        length = encryption.key_length or cipher[1]
        key = hashlib.pbkdf2_hmac(prf_hash, password, encryption.salt,
                                  _check_count(encryption.iterations), length)
        return _run_cipher(cipher[0], key, encryption.iv, data)
    raise DerivationRefused(f"{encryption.describe()} is not supported")


def _run_cipher(name: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TripleDES and RC2 live in "decrepit"
        from cryptography.hazmat.decrepit.ciphers import algorithms as old

        if name.startswith("AES"):
            algorithm, block = algorithms.AES(key), 128
        elif name in ("3DES", "DES-EDE3-CBC"):
            algorithm, block = old.TripleDES(key), 64
        elif name == "2-key 3DES":
            algorithm, block = old.TripleDES(key + key[:8]), 64
        elif name == "RC2-128":
            algorithm, block = old.RC2(key), 64
        elif name in ("RC4-128", "RC4-40"):
            decryptor = Cipher(old.ARC4(key), mode=None).decryptor()
            return decryptor.update(data) + decryptor.finalize()
        else:
            # RC2-40 included: cryptography implements RC2 with 128-bit keys only.
            raise DerivationRefused(f"decrypting {name} is not supported")
        if len(data) % (block // 8) or len(iv) != block // 8:
            raise ValueError("ciphertext or IV has the wrong length")
        decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(block).unpadder()
    return unpadder.update(plain) + unpadder.finalize()
