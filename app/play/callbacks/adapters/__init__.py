"""Wire protocols of provider callbacks, mapped onto the one seamless-wallet service
(``app.play.callbacks.actions``).

One module per protocol, one line in ``ADAPTERS``:

* ``native``: JSON, ``X-Signature`` = hex HMAC-SHA256 of the body (docs/money.md);
* ``pragmatic``: form parameters + MD5 ``hash``, one URL per action;
* ``hub88``: Hub88's wallet API, RSA-SHA256 signatures both ways, amounts x 100,000;
* ``softswiss``: SoftSwiss-style ``play``/``rollback`` with several actions per request,
  ``X-REQUEST-SIGN`` = hex HMAC-SHA256, minor units, HTTP 4xx/5xx refusals;
* ``slotegrator``: Slotegrator GIS-style form ``action``s, ``X-Sign`` = hex HMAC-SHA1 over the
  parameters and the ``X-Merchant-Id``/``X-Timestamp``/``X-Nonce`` headers, +-5 min, nonces once;
* ``evolution``: Evolution One Wallet-style ``check``/``balance``/``debit``/``credit``/``cancel``,
  JSON, ``authToken`` in the query compared in constant time with the secret.

``base`` says what an adapter is. Signatures are checked before anything is parsed or looked
up; the callback log, replay and console views see every protocol through the same
``CallbackRequest``/``CallbackResult``.
"""

from __future__ import annotations

from typing import Any

from app.play.callbacks.adapters.base import (
    Adapter,
    BadSignature,
    WireRequest,
    WireResponse,
    unsigned_payload,
)
from app.play.callbacks.adapters.evolution import EvolutionAdapter
from app.play.callbacks.adapters.hub88 import Hub88Adapter
from app.play.callbacks.adapters.native import NativeAdapter, native_signature
from app.play.callbacks.adapters.pragmatic import PragmaticAdapter, pragmatic_hash
from app.play.callbacks.adapters.slotegrator import SlotegratorAdapter, slotegrator_signature
from app.play.callbacks.adapters.softswiss import SoftSwissAdapter, softswiss_signature
from app.play.callbacks.protocol import CallbackError, CallbackRequest, ProviderConfig

ADAPTERS: dict[str, Adapter] = {
    "native": NativeAdapter(),
    "pragmatic": PragmaticAdapter(),
    "hub88": Hub88Adapter(),
    "softswiss": SoftSwissAdapter(),
    "slotegrator": SlotegratorAdapter(),
    "evolution": EvolutionAdapter(),
}


def request_from_log(provider: ProviderConfig, payload: Any) -> CallbackRequest:
    adapter = ADAPTERS[provider.protocol]
    if not isinstance(payload, dict):
        raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
    return adapter.from_payload(payload)


__all__ = [
    "ADAPTERS",
    "Adapter",
    "BadSignature",
    "WireRequest",
    "WireResponse",
    "native_signature",
    "pragmatic_hash",
    "request_from_log",
    "slotegrator_signature",
    "softswiss_signature",
    "unsigned_payload",
]
