"""Kafka TLS/SASL settings turned into what each client library takes (SPEC section 7)."""

from __future__ import annotations

import ssl
from typing import Any

import faust

from streams.settings import Settings


def kafka_credentials(settings: Settings) -> Any:
    """Kafka TLS/SASL from the settings, in Faust's terms (None for plaintext)."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if protocol in ("SSL", "SASL_SSL"):
        ssl_context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            ssl_context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Kafka TLS/SASL from the settings, in aiokafka's terms, for the engine's own clients."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    ssl_context = getattr(kafka_credentials(settings), "ssl_context", None)
    if ssl_context is not None:
        options["ssl_context"] = ssl_context
    if protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options
