"""SaaS sign-up: a tenant waiting for its owner to confirm the e-mail address.

``tenant.created`` / ``tenant.email_confirmed`` / ``agent.created`` follow on confirmation.
The confirmation token itself never reaches the log, only its SHA-256.
"""

from contracts.base import EventData, Id, ShortText


class TenantSignedUp(EventData):
    TYPE = "tenant.signed_up"
    DECIDED_BY = "admin"
    tenant_id: Id
    name: ShortText
    owner_email: ShortText
    owner_name: ShortText
    password_hash: ShortText
    token_hash: Id


MODELS = (TenantSignedUp,)
