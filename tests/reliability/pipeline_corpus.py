"""Malformed pipeline files, each with the exit code and the message it must produce.

An entry is the file's content (text or raw bytes), extra command-line
arguments and the expected exit code: 2 for a pipeline that cannot be loaded
or validated, 1 for a step that fails at run time. Two fragments of the
message follow: where (``{file}`` is the pipeline's path, ``{work}`` the work
directory) and what the problem is. Most entries change one line of a valid
pipeline, so each one tests one mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from reliability.conftest import CERT, CHAIN, KEY, REPLY


@dataclass(frozen=True)
class Case:
    id: str
    content: str | bytes
    code: int
    where: str
    problem: str
    args: tuple[str, ...] = ()
    env: dict[str, str | None] = field(default_factory=dict)
    # Files to write in the work directory before the snapshot, by relative path.
    files: dict[str, bytes] = field(default_factory=dict)
    # Runs on the pipeline's path before certpipe does (to make it a folder, say).
    prepare: Callable[..., None] | None = None


BASE = f"""\
version: 1
name: corpus
steps:
  - name: key
    kind: private_key
    algorithm: rsa
    bits: 2048
    out: {KEY}
  - name: csr
    kind: csr
    key: {KEY}
    subject:
      C: XX
      O: Example Org
      CN: www.example.test
    subject_alt_names:
      dns: [example.test]
    out: new.csr
"""

# Appended as steps[2], starting at line 19.
PFX_STEP = f"""\
  - name: pfx
    kind: pkcs12
    key: {KEY}
    cert: {CERT}
    chain: {CHAIN}
    password: env:PFX_PASSWORD
    out: new.pfx
"""

REPLY_STEP = f"""\
  - name: reply
    kind: ca_reply
    reply: {REPLY}
    key: {KEY}
    csr: new.csr
    cert_out: new.crt
    chain_out: new.chain.pem
"""

SIGN_STEP = """\
  - name: sign
    kind: local_ca
    csr: new.csr
    out: new.p7b
"""


def edit(old: str, new: str, base: str = BASE) -> str:
    """Return *base* with the one occurrence of *old* replaced by *new*."""
    assert base.count(old) == 1, f"{old!r} occurs {base.count(old)} times"
    return base.replace(old, new)


def with_step(step: str, old: str = "", new: str = "") -> str:
    text = BASE + step
    return edit(old, new, text) if old else text


CASES: list[Case] = []


def case(id: str, content: str | bytes, code: int, where: str, problem: str,
         **extra: object) -> None:
    CASES.append(Case(id, content, code, where, problem, **extra))  # type: ignore[arg-type]


# --- YAML syntax --------------------------------------------------------------
case("yaml-unclosed-flow-list", edit("dns: [example.test]", "dns: [example.test"),
     2, "{file}:18:8", "invalid YAML: expected ',' or ']', but got ':'")
case("yaml-unclosed-quote", edit("name: corpus", 'name: "corpus'),
     2, "{file}:", "invalid YAML")
case("yaml-bad-indent", edit("    kind: csr", "     kind: csr"),
     2, "{file}:10:", "invalid YAML")
case("yaml-tab-indent", edit("    kind: csr", "\tkind: csr"),
     2, "{file}:10:1", "invalid YAML")
case("yaml-mapping-in-plain-value", edit("out: new.csr", "out: new: csr"),
     2, "{file}:18:13", "invalid YAML: mapping values are not allowed here")
case("yaml-unclosed-flow-map", edit("dns: [example.test]", "{dns: [example.test]"),
     2, "{file}:", "invalid YAML")
case("yaml-undefined-alias", edit("out: new.csr", "out: *nowhere"),
     2, "{file}:18:10", "found undefined alias")
case("yaml-two-documents", BASE + "---\nversion: 1\n",
     2, "{file}:19:1", "invalid YAML: but found another document")
case("yaml-bad-escape", edit("name: corpus", 'name: "c\\qorpus"'),
     2, "{file}:2:", "invalid YAML: found unknown escape character")
case("yaml-list-after-mapping", "version: 1\n- steps\n",
     2, "{file}:2:1", "invalid YAML")
case("yaml-stray-closing-bracket", edit("dns: [example.test]", "dns: example.test]"),
     2, "{file}:17:12", "expected an array, got string \"example.test]\"")
case("yaml-version-directive", "%YAML 2.0\n---\n" + BASE,
     2, "{file}:1:1", "invalid YAML: found incompatible YAML document")
case("yaml-bad-tag-directive", "%TAG !x!\n---\n" + BASE,
     2, "{file}:1:", "invalid YAML")
case("yaml-anchor-without-node", "version: 1\nsteps: &a\n  - &\n", 2, "{file}:3:", "invalid YAML")
case("yaml-block-scalar-indent", edit("name: corpus", "name: |2\n x"),
     2, "{file}:3:", "invalid YAML")
case("yaml-duplicate-key", edit("    bits: 2048\n", "    bits: 2048\n    bits: 4096\n"),
     2, "{file}:8:5", "duplicate key 'bits'")
case("yaml-merge-key", "version: 1\nbase: &b {kind: csr}\nsteps:\n  - <<: *b\n    name: x\n",
     2, "{file}:4:5", "YAML merge keys ('<<') are not supported")
case("yaml-complex-key", edit("name: corpus", "? [a, b]\n: corpus"),
     2, "{file}:2:3", "a mapping key must be a plain string")

# --- the file itself ----------------------------------------------------------
case("file-empty", "", 2, "{file}", "the file is empty")
case("file-only-comments", "# nothing yet\n# still nothing\n", 2, "{file}", "the file is empty")
case("file-only-document-marker", "---\n", 2, "{file}:", "top level must be a mapping")
case("file-top-level-list", "- version: 1\n", 2, "{file}:1:1", "top level must be a mapping")
case("file-top-level-string", "just text\n", 2, "{file}:1:1", "top level must be a mapping")
case("file-top-level-number", "42\n", 2, "{file}:1:1", "top level must be a mapping")
case("file-utf16", BASE.encode("utf-16"), 2, "{file}", "not UTF-8 text")
case("file-latin1", edit("Example Org", "Müller GmbH").encode("latin-1"),
     2, "{file}", "not UTF-8 text (invalid byte at offset")
case("file-invalid-utf8-byte", BASE.encode() + b"# \xff\xfe\n", 2, "{file}", "not UTF-8 text")
case("file-nul-byte", BASE.encode().replace(b"corpus", b"cor\x00pus"),
     2, "{file}", "contains a NUL byte at offset")
case("file-too-large", BASE + ("# padding padding padding\n" * 40_000),
     2, "{file}", "more than the maximum of")
case("file-missing", BASE, 2, "{file}", "pipeline file not found",
     prepare=lambda path: path.unlink())
case("file-is-folder", BASE, 2, "{file}", "is a folder, expected a pipeline file",
     prepare=lambda path: (path.unlink(), path.mkdir()))

# --- top level keys and types -------------------------------------------------
case("top-missing-version", edit("version: 1\n", ""), 2, "{file}:1:1",
     "(top level): 'version' is required but missing")
case("top-version-2", edit("version: 1", "version: 2"), 2, "{file}:1:10",
     "version: 2 is not allowed; expected 1")
case("top-version-string", edit("version: 1", 'version: "1"'), 2, "{file}:1:10",
     "version: \"1\" is not allowed; expected 1")
case("top-version-null", edit("version: 1", "version:"), 2, "{file}:1:",
     "version: null is not allowed")
case("top-missing-steps", "version: 1\nname: x\n", 2, "{file}:1:1",
     "'steps' is required but missing")
case("top-steps-empty", "version: 1\nsteps: []\n", 2, "{file}:2:8", "steps: [] should be non-empty")
case("top-steps-mapping", "version: 1\nsteps: {key: x}\n", 2, "{file}:2:8",
     "steps: expected an array, got mapping")
case("top-steps-string", "version: 1\nsteps: key\n", 2, "{file}:2:8",
     "steps: expected an array, got string \"key\"")
case("top-unknown-key", edit("steps:", "step:") , 2, "{file}:3:1",
     "unknown key 'step'; did you mean 'steps'?")
case("top-name-empty", edit("name: corpus", 'name: ""'), 2, "{file}:2:7",
     "name: \"\" should be non-empty")
case("top-name-too-long", edit("name: corpus", "name: " + "n" * 300), 2, "{file}:2:7",
     "is too long")
case("top-timeout-zero", edit("name: corpus", "name: corpus\ntimeout: 0"), 2, "{file}:3:10",
     "timeout: 0 is less than the minimum of 1")
case("top-timeout-negative", edit("name: corpus", "name: corpus\ntimeout: -5"), 2, "{file}:3:10",
     "timeout: -5 is less than the minimum of 1")
case("top-timeout-string", edit("name: corpus", "name: corpus\ntimeout: '10'"), 2,
     "{file}:3:10", "timeout: expected an integer, got string \"10\"")
case("top-timeout-float", edit("name: corpus", "name: corpus\ntimeout: 1.5"), 2, "{file}:3:10",
     "timeout: expected an integer, got number 1.5")
case("top-timeout-huge", edit("name: corpus", "name: corpus\ntimeout: 100000"), 2,
     "{file}:3:10", "timeout: 100000 is greater than the maximum of 86400")
case("top-vars-list", edit("name: corpus", "name: corpus\nvars: [a, b]"), 2, "{file}:3:7",
     "vars: expected a mapping of names to values")
case("top-vars-string", edit("name: corpus", "name: corpus\nvars: host"), 2, "{file}:3:7",
     "vars: expected a mapping of names to values")

# --- steps: types and keys ----------------------------------------------------
case("step-is-string", "version: 1\nsteps:\n  - key\n", 2, "{file}:3:5",
     "steps[0]: expected an object, got string \"key\"")
case("step-is-null", "version: 1\nsteps:\n  -\n  - name: b\n", 2, "{file}:3:",
     "steps[0]: expected an object, got null")
case("step-is-list", "version: 1\nsteps:\n  - [name, key]\n", 2, "{file}:3:5",
     "steps[0]: expected an object, got list")
case("step-missing-name", edit("  - name: key\n    kind", "  - kind"), 2, "{file}:4:5",
     "steps[0]: 'name' is required but missing")
case("step-missing-kind", edit("    kind: private_key\n", ""), 2, "{file}:4:5",
     "steps[0] (step 'key'): 'kind' is required but missing")
case("step-unknown-kind", edit("kind: private_key", "kind: private-key"), 2, "{file}:5:11",
     "steps[0].kind (step 'key'): \"private-key\" is not allowed; expected one of")
case("step-kind-number", edit("kind: private_key", "kind: 7"), 2, "{file}:5:11",
     "steps[0].kind (step 'key'): 7 is not allowed")
case("step-name-space", edit("name: key", "name: my key"), 2, "{file}:4:11",
     "steps[0].name: \"my key\" is not valid")
case("step-name-dash", edit("name: key", "name: -key"), 2, "{file}:4:11",
     "steps[0].name: \"-key\" is not valid")
case("step-name-too-long", edit("name: key", "name: " + "k" * 70), 2, "{file}:4:11",
     "steps[0].name: \"kkkk")
case("step-name-number", edit("name: key", "name: 12"), 2, "{file}:4:11",
     "steps[0].name: expected a string, got integer 12")
case("step-algorithm-dsa", edit("algorithm: rsa", "algorithm: dsa"), 2, "{file}:6:16",
     "steps[0].algorithm (step 'key'): \"dsa\" is not allowed; expected one of \"rsa\", \"ec\"")
case("step-bits-1024", edit("bits: 2048", "bits: 1024"), 2, "{file}:7:11",
     "steps[0].bits (step 'key'): 1024 is not allowed; expected one of 2048, 3072, 4096")
case("step-bits-string", edit("bits: 2048", "bits: '2048'"), 2, "{file}:7:11",
     "steps[0].bits (step 'key'): \"2048\" is not allowed")
case("step-bits-float", edit("bits: 2048", "bits: 2048.5"), 2, "{file}:7:11",
     "steps[0].bits (step 'key'): 2048.5 is not allowed")
case("step-rsa-with-curve", edit("bits: 2048", "bits: 2048\n    curve: P-256"), 2, "{file}:4:5",
     "'curve' does not apply here")
case("step-ec-with-bits", edit("algorithm: rsa", "algorithm: ec"), 2, "{file}:4:5",
     "'bits' does not apply here")
case("step-curve-p521", edit("algorithm: rsa\n    bits: 2048", "algorithm: ec\n    curve: P-521"),
     2, "{file}:7:12", "steps[0].curve (step 'key'): \"P-521\" is not allowed")
case("step-out-number", edit(f"out: {KEY}", "out: 5"), 2, "{file}:8:10",
     "steps[0].out (step 'key'): expected a string, got integer 5")
case("step-out-list", edit(f"out: {KEY}", "out: [a, b]"), 2, "{file}:8:10",
     "steps[0].out (step 'key'): expected a string, got list")
case("step-out-empty", edit(f"out: {KEY}", "out: ''"), 2, "{file}:8:10",
     "steps[0].out (step 'key'): \"\" should be non-empty")
case("step-out-null", edit(f"out: {KEY}", "out:"), 2, "{file}:8:",
     "steps[0].out (step 'key'): expected a string, got null")
case("step-unknown-key", edit("    bits:", "    bitz:"), 2, "{file}:7:5",
     "steps[0].bitz (step 'key'): unknown key 'bitz'; did you mean 'bits'?")
case("step-unknown-subject-key", edit("CN: www", "CNN: www"), 2, "{file}:15:7",
     "steps[1].subject.CNN (step 'csr'): unknown key 'CNN'; did you mean 'CN'?")
case("step-unknown-san-key", edit("dns: [", "dns_names: ["), 2, "{file}:17:7",
     "steps[1].subject_alt_names.dns_names (step 'csr'): unknown key 'dns_names'")
case("step-subject-list", edit("    subject:\n      C: XX\n      O: Example Org\n"
                               "      CN: www.example.test", "    subject: [CN]"),
     2, "{file}:12:14", "steps[1].subject (step 'csr'): expected an object, got list")
case("step-subject-empty", edit("    subject:\n      C: XX\n      O: Example Org\n"
                                "      CN: www.example.test", "    subject: {}"),
     2, "{file}:12:14", "steps[1].subject (step 'csr'): {} should be non-empty")
case("step-country-three-letters", edit("C: XX", "C: USA"), 2, "{file}:13:10",
     "steps[1].subject.C (step 'csr'): \"USA\" is not valid (Country, two letters.)")
case("step-cn-too-long", edit("CN: www.example.test", "CN: " + "w" * 65), 2, "{file}:15:11",
     "steps[1].subject.CN (step 'csr'): ")
case("step-o-empty-list", edit("O: Example Org", "O: []"), 2, "{file}:14:10",
     "steps[1].subject.O (step 'csr'): expected a string or a list of strings")
case("step-ou-number-in-list", edit("O: Example Org", "OU: [Web, 5]"), 2, "{file}:14:",
     "steps[1].subject.OU (step 'csr'): expected a string or a list of strings")
case("step-dns-string", edit("dns: [example.test]", "dns: example.test"), 2, "{file}:17:12",
     "steps[1].subject_alt_names.dns (step 'csr'): expected an array, got string")
case("step-dns-space", edit("[example.test]", "['a b.example']"), 2, "{file}:17:13",
     "steps[1].subject_alt_names.dns[0] (step 'csr'): \"a b.example\" is not valid")
case("step-dns-leading-dash", edit("[example.test]", "[-bad-.example]"), 2, "{file}:17:13",
     "steps[1].subject_alt_names.dns[0] (step 'csr'): \"-bad-.example\" is not valid")
case("step-ip-out-of-range", edit("dns: [example.test]", "ip: [10.0.0.300]"), 2, "{file}:9:5",
     "'10.0.0.300' is not an IPv4 or IPv6 address")
case("step-ip-number", edit("dns: [example.test]", "ip: [17]"), 2, "{file}:17:12",
     "steps[1].subject_alt_names.ip[0] (step 'csr'): expected a string, got integer 17")
case("step-digest-md5", edit("    out: new.csr", "    digest: md5\n    out: new.csr"), 2,
     "{file}:18:13", "steps[1].digest (step 'csr'): \"md5\" is not allowed")
case("step-csr-missing-key", edit(f"    key: {KEY}\n", ""), 2, "{file}:9:5",
     "steps[1] (step 'csr'): 'key' is required but missing")
case("step-cn-not-host", edit("CN: www.example.test", "CN: Example Corp"), 2, "{file}:9:5",
     "subject.CN 'Example Corp' is not a host name or IP address")
case("step-no-cn-no-san", edit("      CN: www.example.test\n    subject_alt_names:\n"
                               "      dns: [example.test]\n", ""),
     2, "{file}:9:5", "needs a CN in subject or at least one subject_alt_names entry")
case("pfx-missing-password", with_step(PFX_STEP, "    password: env:PFX_PASSWORD\n", ""),
     2, "{file}:19:5", "steps[2] (step 'pfx'): 'password' is required but missing")
case("pfx-literal-password", with_step(PFX_STEP, "env:PFX_PASSWORD", "Hunter2-Literal"),
     2, "{file}:24:15", "steps[2].password (step 'pfx'): is not a password source")
case("pfx-pass-prefix", with_step(PFX_STEP, "env:PFX_PASSWORD", "pass:Hunter2-Literal"),
     2, "{file}:24:15", "steps[2].password (step 'pfx'): is not a password source")
case("pfx-empty-file-source", with_step(PFX_STEP, "env:PFX_PASSWORD", "'file:'"),
     2, "{file}:24:15", "is not a password source")
case("pfx-bad-env-name", with_step(PFX_STEP, "env:PFX_PASSWORD", "env:1PASS"),
     2, "{file}:24:15", "is not a password source")
case("pfx-unknown-profile", with_step(PFX_STEP, "    out: new.pfx", "    profile: legacy\n"
                                                "    out: new.pfx"),
     2, "{file}:25:14", "steps[2].profile (step 'pfx'): \"legacy\" is not allowed")
case("pfx-passphrase-number", with_step(PFX_STEP, "    out: new.pfx",
                                        "    key_passphrase: 1234\n    out: new.pfx"),
     2, "{file}:25:21", "steps[2].key_passphrase (step 'pfx'): is not a password source")
case("reply-include-root-string", with_step(REPLY_STEP, "    cert_out",
                                            "    include_root: 'yes'\n    cert_out"),
     2, "{file}:24:19", "steps[2].include_root (step 'reply'): expected a boolean")
case("reply-weak-signature-ignore", with_step(REPLY_STEP, "    cert_out",
                                              "    weak_signature: ignore\n    cert_out"),
     2, "{file}:24:21", "steps[2].weak_signature (step 'reply'): \"ignore\" is not allowed")
case("reply-extra-certs-string", with_step(REPLY_STEP, "    cert_out",
                                           "    extra_certs: chain.pem\n    cert_out"),
     2, "{file}:24:18", "steps[2].extra_certs (step 'reply'): expected an array")
case("reply-missing-chain-out", with_step(REPLY_STEP, "    chain_out: new.chain.pem\n", ""),
     2, "{file}:19:5", "'chain_out' is required but missing")
case("sign-days-zero", with_step(SIGN_STEP, "    out: new.p7b", "    days: 0\n    out: new.p7b"),
     2, "{file}:22:11", "steps[2].days (step 'sign'): 0 is less than the minimum of 1")
case("sign-days-too-many", with_step(SIGN_STEP, "    out: new.p7b",
                                     "    days: 5000\n    out: new.p7b"),
     2, "{file}:22:11", "5000 is greater than the maximum of 3650")

# --- variables ----------------------------------------------------------------
case("var-unknown", edit("out: new.csr", "out: ${host}.csr"), 2, "{file}:18:10",
     "steps[1].out: unknown variable 'host' (defined: none); add it under vars: or pass "
     "--set host=VALUE")
case("var-invalid-name", edit("out: new.csr", "out: ${bad-name}.csr"), 2, "{file}:18:10",
     "steps[1].out: invalid variable reference '${bad-name}'")
case("var-empty-reference", edit("out: new.csr", "out: ${}.csr"), 2, "{file}:18:10",
     "steps[1].out: invalid variable reference '${}'")
case("var-unclosed-reference", edit("out: new.csr", "out: ${host.csr"), 2, "{file}:18:10",
     "steps[1].out: unclosed variable reference '${host.csr'")
case("var-cycle", edit("name: corpus", "name: corpus\nvars:\n  a: ${b}\n  b: ${a}"), 2,
     "{file}:4:6", "vars.a: variables refer to each other in a cycle (a -> b -> a)")
case("var-self-reference", edit("name: corpus", "name: corpus\nvars:\n  a: x${a}"), 2,
     "{file}:4:6", "vars.a: variables refer to each other in a cycle (a -> a)")
case("var-value-list", edit("name: corpus", "name: corpus\nvars:\n  a: [1, 2]"), 2,
     "{file}:4:6", "vars.a: expected a string, number or boolean")
case("var-value-null", edit("name: corpus", "name: corpus\nvars:\n  a:"), 2,
     "{file}:4:", "vars.a: expected a string, number or boolean")
case("var-bad-name", edit("name: corpus", "name: corpus\nvars:\n  my-host: x"), 2,
     "{file}:4:3", "vars.my-host: invalid variable name")
case("var-nesting-too-deep", edit("name: corpus", "name: corpus\nvars:\n" + "".join(
    f"  v{i}: ${{v{i + 1}}}\n" for i in range(14)) + "  v14: end"), 2, "{file}:",
     "variable references nest more than 10 levels")
case("var-unknown-inside-vars", edit("name: corpus", "name: corpus\nvars:\n  a: ${nope}"), 2,
     "{file}:4:6", "vars.a: unknown variable 'nope'")
case("var-number-where-string", edit("name: corpus", "name: corpus\nvars:\n  n: 5")
     .replace("name: key", "name: ${n}"), 2, "{file}:6:11",
     "steps[0].name: expected a string, got integer 5")
case("var-in-key-position", edit("name: corpus", "name: corpus\n${k}: 1"), 2, "{file}:3:1",
     "unknown key '${k}'")
case("set-without-equals", BASE, 2, "--set 'host'", "expected NAME=VALUE",
     args=("--set", "host"))
case("set-bad-name", BASE, 2, "--set '1x=3'", "expected NAME=VALUE", args=("--set", "1x=3"))
case("set-makes-bits-invalid", edit("bits: 2048", "bits: ${bits}"), 2, "{file}:7:11",
     "steps[0].bits (step 'key'): 1000 is not allowed", args=("--set", "bits=1000"))
case("set-newline-in-subject", edit("O: Example Org", "O: ${org}"), 2, "{file}:14:10",
     "steps[1].subject.O (step 'csr'): contains a control character (U+000A, line feed)",
     args=("--set", "org=Example\n[ext]\nbasicConstraints=CA:TRUE"))

# --- the step graph -----------------------------------------------------------
case("graph-reads-own-output", edit(f"    key: {KEY}", "    key: new.csr"), 2, "{file}:11:10",
     "steps[1].key (step 'csr'): uses 'new.csr', which itself writes")
case("graph-reads-later-output", edit(f"    key: {KEY}", "    key: later.key") + """\
  - name: later
    kind: private_key
    algorithm: ec
    out: later.key
""", 2, "{file}:11:10", "uses 'later.key', which the later step 'later' writes")
case("graph-duplicate-step-name", edit("name: csr", "name: key"), 2, "{file}:9:11",
     "steps[1].name: step name 'key' is already used by steps[0]")
case("graph-same-output-twice", edit("out: new.csr", f"out: ./{KEY}"), 2, "{file}:18:10",
     f"steps[1].out (step 'csr'): './{KEY}' is already written by step 'key'")
case("graph-cert-and-chain-same-file", with_step(REPLY_STEP, "chain_out: new.chain.pem",
                                                 "chain_out: new.crt"),
     2, "{file}:25:16", "'new.crt' is already written by step 'reply'")

# --- paths that leave the work directory -------------------------------------
for name, written, value, reason in [
    ("parent", "../escaped.csr", "../escaped.csr", "leaves the work directory"),
    ("absolute", "/tmp/escaped.csr", "/tmp/escaped.csr", "is absolute"),
    ("home", "~/escaped.csr", "~/escaped.csr", "is absolute"),
    ("drive-letter", "'C:\\escaped.csr'", "C:\\escaped.csr", "is absolute"),
    ("backslash", "'sub\\..\\escaped.csr'", "sub\\..\\escaped.csr", "leaves the work directory"),
    ("inner-parent", "sub/../../escaped.csr", "sub/../../escaped.csr", "leaves the work directory"),
    ("state-folder", ".certpipe/state.json", ".certpipe/state.json", "is inside .certpipe"),
    ("workdir-itself", "'.'", ".", "names the work directory itself"),
    ("workdir-dot-slash", "./", "./", "names the work directory itself"),
]:
    case(f"path-{name}", edit("out: new.csr", f"out: {written}"), 2, "{file}:18:10",
         f"steps[1].out (step 'csr'): {value!r} {reason}")
case("path-nul-byte", edit("out: new.csr", 'out: "new\\0.csr"'), 2, "{file}:18:10",
     "steps[1].out (step 'csr'): contains a control character (U+0000, nul)")
case("path-ca-dir-parent", with_step(SIGN_STEP, "    out: new.p7b",
                                     "    ca_dir: ../ca\n    out: new.p7b"),
     2, "{file}:22:13", "steps[2].ca_dir (step 'sign'): '../ca' leaves the work directory")
case("path-cert-out-absolute", with_step(REPLY_STEP, "cert_out: new.crt",
                                         "cert_out: /etc/escaped.crt"),
     2, "{file}:24:15", "steps[2].cert_out (step 'reply'): '/etc/escaped.crt' is absolute")
case("path-too-long", edit("out: new.csr", "out: " + "d/" * 2100 + "x.csr"), 2,
     "{file}:18:10", "is too long")
case("path-component-too-long", edit("out: new.csr", "out: " + "n" * 300 + ".csr"), 2,
     "{file}:18:10", "has a file or folder name longer than 220 bytes")

# --- hostile values -----------------------------------------------------------
for name, value, shown in [
    ("cn-newline", '"www.example.test\\nO=Evil"', "U+000A"),
    ("cn-nul", '"www.example.test\\0"', "U+0000"),
    ("cn-carriage-return", '"www.example.test\\r"', "U+000D"),
    ("cn-escape-sequence", '"www\\e[31m.example.test"', "U+001B"),
    ("cn-delete", '"www\\x7f.example.test"', "U+007F"),
    ("cn-next-line", '"www\\N.example.test"', "U+0085"),
    ("cn-line-separator", '"www\\L.example.test"', "U+2028"),
]:
    case(f"hostile-{name}", edit("CN: www.example.test", f"CN: {value}"), 2, "{file}:15:11",
         f"steps[1].subject.CN (step 'csr'): contains a control character ({shown}")
case("hostile-config-injection", edit("O: Example Org",
                                      'O: "Example\\n[ext]\\nbasicConstraints = CA:TRUE"'),
     2, "{file}:14:10", "steps[1].subject.O (step 'csr'): contains a control character")
case("hostile-block-scalar", edit("O: Example Org", "O: |\n        Example\n        Org"),
     2, "{file}:14:10", "steps[1].subject.O (step 'csr'): contains a control character")
case("hostile-leading-space", edit("CN: www.example.test", "CN: ' www.example.test'"), 2,
     "{file}:9:5", "starts or ends with a space")
case("hostile-ca-name-newline", with_step(SIGN_STEP, "    out: new.p7b",
                                          '    ca_name: "Test CA\\n/CN=Evil"\n    out: new.p7b'),
     2, "{file}:22:14", "steps[2].ca_name (step 'sign'): contains a control character")
case("hostile-friendly-name-newline", with_step(PFX_STEP, "    out: new.pfx",
                                                '    friendly_name: "www\\n2026"\n'
                                                "    out: new.pfx"),
     2, "{file}:25:20", "steps[2].friendly_name (step 'pfx'): contains a control character")
case("hostile-password-source-newline", with_step(PFX_STEP, "env:PFX_PASSWORD",
                                                  '"env:PFX_PASSWORD\\n"'),
     2, "{file}:24:15", "steps[2].password (step 'pfx'): contains a control character")
case("hostile-step-name-newline", edit("name: key", 'name: "key\\nx"'), 2, "{file}:4:11",
     "steps[0].name: contains a control character")
case("hostile-dns-newline", edit("[example.test]", '["example.test\\nx"]'), 2, "{file}:17:13",
     "steps[1].subject_alt_names.dns[0] (step 'csr'): contains a control character")
case("hostile-input-path-newline", edit(f"    key: {KEY}", '    key: "a\\nb.key"'), 2,
     "{file}:11:10", "steps[1].key (step 'csr'): contains a control character")

# --- YAML tags ----------------------------------------------------------------
for name, tagged in [
    ("python-apply", "!!python/object/apply:os.system [echo pwned]"),
    ("python-name", "!!python/name:os.system"),
    ("python-new", "!!python/object/new:subprocess.Popen [[echo]]"),
    ("python-tuple", "!!python/tuple [a, b]"),
    ("custom-scalar", "!secret x"),
    ("set", "!!set {a, b}"),
    ("omap", "!!omap [a: 1]"),
    ("pairs", "!!pairs [a: 1]"),
    ("custom-mapping", "!step {kind: csr}"),
    ("verbatim", "!<tag:example.test,2024:thing> x"),
]:
    case(f"tag-{name}", edit("name: corpus", f"name: {tagged}"), 2, "{file}:2:7",
         "is not allowed")

# --- huge and deeply nested ---------------------------------------------------
LAUGHS = "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n" for i in range(9)
)
case("huge-alias-expansion", "version: 1\n" + LAUGHS + "steps: []\n", 2, "{file}",
     "more than 100000 YAML nodes")
case("huge-flow-nesting", "version: 1\nsteps: " + "[" * 5000 + "]" * 5000 + "\n", 2, "{file}",
     "nested too deeply")
case("huge-block-nesting", "version: 1\nsteps:\n" + "".join(
    "  " * i + "- \n" for i in range(1, 45)) + "  " * 45 + "- x\n", 2, "{file}:",
     "nested more than 32 levels deep")
case("huge-node-count", "version: 1\nsteps: [" + "1," * 120_000 + "1]\n", 2, "{file}",
     "more than 100000 YAML nodes")
case("huge-step-count", "version: 1\nsteps:\n" + "".join(
    f"  - {{name: k{i}, kind: private_key, algorithm: ec, out: k{i}.key}}\n"
    for i in range(1001)), 2, "{file}:3:3", "steps: is too long (1001 items; at most 1000)")
case("huge-string-value", edit("name: corpus", "name: " + "x" * 900_000), 2, "{file}:2:7",
     "(900002 characters) is too long (900000 characters; at most 200)")
case("huge-unknown-key", edit("name: corpus", "name: corpus\n" + "k" * 1000 + ": 1"), 2,
     "{file}:3:1", "(1000 characters)'; allowed keys: certificates, name, steps, timeout, vars, version")
case("huge-plain-key", edit("name: corpus", "name: corpus\n" + "k" * 20_000 + ": 1"), 2,
     "{file}:3:20001", "invalid YAML: could not find expected ':'")
case("huge-many-unknown-keys", edit("name: corpus", "name: corpus\n" + "".join(
    f"extra{i}: 1\n" for i in range(5000)).rstrip("\n")), 2, "{file}:3:1",
     "... and 4980 more errors")

# --- problems found when the steps run (exit 1) ------------------------------
RUN_BASE = """\
version: 1
steps:
"""
CSR_RUN = RUN_BASE + """\
  - name: c-csr
    kind: csr
    key: {key}
    subject: {{CN: www.example.test}}
    out: run.csr
"""
PFX_RUN = RUN_BASE + """\
  - name: c-pfx
    kind: pkcs12
    key: {key}
    cert: {cert}
    chain: {chain}
    password: {password}
    out: run.pfx
"""
REPLY_RUN = RUN_BASE + """\
  - name: c-reply
    kind: ca_reply
    reply: {reply}
    key: {key}
    csr: {csr}
    extra_certs: [{extra}]
    cert_out: run.crt
    chain_out: run.chain.pem
"""


def pfx_run(key: str = KEY, cert: str = CERT, chain: str = CHAIN,
            password: str = "env:PFX_PASSWORD") -> str:
    return PFX_RUN.format(key=key, cert=cert, chain=chain, password=password)


def reply_run(reply: str = REPLY, key: str = KEY, csr: str = "www.example.test.csr",
              extra: str = CHAIN) -> str:
    return REPLY_RUN.format(reply=reply, key=key, csr=csr, extra=extra)


case("run-csr-key-missing", CSR_RUN.format(key="missing.key"), 1, "step 'c-csr'",
     "{work}/missing.key: file not found")
case("run-csr-key-is-folder", CSR_RUN.format(key="old"), 1, "step 'c-csr'",
     "{work}/old: is a folder, expected a file with a private key")
case("run-pfx-cert-missing", pfx_run(cert="missing.crt"), 1, "step 'c-pfx'",
     "{work}/missing.crt: file not found")
case("run-pfx-chain-missing", pfx_run(chain="missing.chain.pem"), 1, "step 'c-pfx'",
     "{work}/missing.chain.pem: file not found")
case("run-pfx-key-missing", pfx_run(key="missing.key"), 1, "step 'c-pfx'",
     "{work}/missing.key: file not found")
case("run-pfx-password-env-unset", pfx_run(password="env:UNSET_PASSWORD_VAR"), 1,
     "step 'c-pfx'", "environment variable UNSET_PASSWORD_VAR is not set",
     env={"UNSET_PASSWORD_VAR": None})
case("run-pfx-password-env-empty", pfx_run(password="env:EMPTY_PASSWORD_VAR"), 1,
     "step 'c-pfx'", "environment variable EMPTY_PASSWORD_VAR is empty",
     env={"EMPTY_PASSWORD_VAR": ""})
case("run-pfx-password-file-missing", pfx_run(password="file:missing-password.txt"), 1,
     "step 'c-pfx'", "password file {work}/missing-password.txt (file:missing-password.txt) "
     "not found")
case("run-pfx-password-file-empty", pfx_run(password="file:empty-password.txt"), 1,
     "step 'c-pfx'", "password file {work}/empty-password.txt is empty",
     files={"empty-password.txt": b""})
case("run-pfx-password-file-two-lines", pfx_run(password="file:two-lines.txt"), 1,
     "step 'c-pfx'", "password file {work}/two-lines.txt has more than one line",
     files={"two-lines.txt": b"first\nsecond\n"})
case("run-pfx-password-file-is-folder", pfx_run(password="file:old"), 1, "step 'c-pfx'",
     "password file {work}/old (file:old) is a folder")
case("run-reply-key-missing", reply_run(key="missing.key"), 1, "step 'c-reply'",
     "{work}/missing.key: file not found")
case("run-reply-csr-missing", reply_run(csr="missing.csr"), 1, "step 'c-reply'",
     "{work}/missing.csr: file not found")
case("run-reply-extra-missing", reply_run(extra="missing-chain.pem"), 1, "step 'c-reply'",
     "{work}/missing-chain.pem: file not found")
case("run-sign-csr-missing", RUN_BASE + """\
  - name: c-sign
    kind: local_ca
    csr: missing.csr
    out: run.p7b
""", 1, "step 'c-sign'", "{work}/missing.csr: file not found")
case("run-existing-key-other-algorithm", RUN_BASE + f"""\
  - name: c-key
    kind: private_key
    algorithm: ec
    out: {KEY}
""", 1, "step 'c-key'", f"{{work}}/{KEY} is a RSA 2048 key, but the pipeline asks for EC P-256")
case("run-existing-key-other-size", RUN_BASE + f"""\
  - name: c-key
    kind: private_key
    algorithm: rsa
    bits: 4096
    out: {KEY}
""", 1, "step 'c-key'", "but the pipeline asks for RSA 4096")
case("run-existing-key-is-not-key", RUN_BASE + """\
  - name: c-key
    kind: private_key
    algorithm: rsa
    out: notes.txt
""", 1, "step 'c-key'", "{work}/notes.txt: is a text file without any PEM block")
case("run-workdir-is-file", BASE, 2, "--workdir {work}/notes.txt", "is not a folder",
     args=("--workdir", "{work}/notes.txt"))
