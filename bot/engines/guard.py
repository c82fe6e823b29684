"""Moved to :mod:`bot.grounding.claims`; this name stays so old imports keep working."""

import sys

from ..grounding import claims as _claims

sys.modules[__name__] = _claims
