"""Events to webhooks: fan-out from the outbox, Standard Webhooks signing, delivery with retries.

``endpoints`` manages endpoints (``create_endpoint`` is the entry point for
every caller), ``delivery`` sends one delivery under a database lease,
``worker`` runs fan-out and delivery in a process, ``urls`` and
``transport`` keep deliveries to public HTTPS addresses.
"""

from interlink.webhooks.delivery import DeliveryOutcome, WebhookDeliverer
from interlink.webhooks.endpoints import create_endpoint
from interlink.webhooks.urls import UrlGuard, WebhookUrlRejected
from interlink.webhooks.worker import DeliveryDispatcher, DeliveryWorker, create_delivery_worker

__all__ = [
    "DeliveryDispatcher",
    "DeliveryOutcome",
    "DeliveryWorker",
    "UrlGuard",
    "WebhookDeliverer",
    "WebhookUrlRejected",
    "create_delivery_worker",
    "create_endpoint",
]
