"""Step kinds, one module each, registered by the name pipelines use in 'kind'."""

from __future__ import annotations

from typing import Any

from certpipe.steps.base import Step
from certpipe.steps.ca_reply import CaReplyStep
from certpipe.steps.command_ca import CommandCaStep
from certpipe.steps.csr import CsrStep
from certpipe.steps.key import PrivateKeyStep
from certpipe.steps.local_ca import LocalCaStep
from certpipe.steps.pkcs12 import Pkcs12Step
from certpipe.steps.server_files import ServerFilesStep

REGISTRY: dict[str, type[Step]] = {
    cls.kind: cls for cls in (PrivateKeyStep, CsrStep, LocalCaStep, CaReplyStep, Pkcs12Step,
                              ServerFilesStep)
}
REGISTRY[CommandCaStep.kind] = CommandCaStep


def build_step(settings: dict[str, Any]) -> Step:
    return REGISTRY[settings["kind"]].from_settings(settings)
