"""SaaS sign-up: a pending tenant, a confirmation link, then a usable tenant with its owner.

Only in ``mode = "saas"``; in tool mode these routes answer 404 and accounts are
created with ``relaydesk admin create-tenant``. The link is a credential: it is mailed
when ``RELAYDESK_SMTP_URL`` is set and only logged (event ``signup_confirmation_link``)
when no mail server is configured, so a local operator can still confirm.
"""

import asyncio
import hashlib
import secrets
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from contracts import Actor, Envelope, derive_event_id
from contracts.commands.admin import ConfirmSignUp, SignUp
from contracts.envelope import ActorKind
from gateway.auth.http import ApiError, get_deps
from gateway.auth.throttle import limit_credential_attempts
from gateway.deps import GatewayDeps
from gateway.routes.admin import allowed_password, send_admin_command
from relaydesk.passwords import hash_password
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

SIGNUP_ACTOR = Actor(kind=ActorKind.system, id="signup")


class SignUpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(
        pattern=r"^[a-z0-9][a-z0-9\-]{2,63}$", description="the account's id, e.g. acme"
    )
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    owner_name: str = Field(min_length=1, max_length=200)
    password: str = Field(description="checked by relaydesk.passwords.password_problem")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tenant_of(token: str) -> str:
    # token = "<tenant>.<random>"; the random part never contains a dot.
    tenant, dot, _ = token.rpartition(".")
    if not dot or not tenant:
        raise ApiError(400, "invalid_token", "malformed confirmation link")
    return tenant


def send_mail(smtp_url: str, to: str, subject: str, text: str) -> None:
    """Blocking: run in a thread. ``smtp://[user:pass@]host[:port]`` (STARTTLS when offered) or ``smtps://``."""
    parts = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        f"relaydesk <no-reply@{parts.hostname}>",
        to,
        subject,
    )
    message.set_content(text)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(
        parts.hostname or "localhost",
        parts.port or (465 if parts.scheme == "smtps" else 25),
        timeout=10,
    ) as smtp:
        if parts.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls()
        if parts.username:
            smtp.login(parts.username, parts.password or "")
        smtp.send_message(message)


async def deliver_link(settings: Settings, tenant: str, email: str, link: str) -> None:
    if settings.smtp_url:
        text = f"Confirm your relaydesk account {tenant}: {link}\n"
        await asyncio.to_thread(
            send_mail, settings.smtp_url, email, "Confirm your relaydesk account", text
        )
        log.info("signup_confirmation_mailed", tenant=tenant)
    else:  # no mail server: the operator reads the link from the log (documented in docs/admin.md)
        log.info("signup_confirmation_link", tenant=tenant, link=link)


def _saas_only(deps: GatewayDeps) -> None:
    if deps.settings.mode != "saas":
        raise ApiError(
            404, "not_found", "sign-up is not available: accounts are created by an administrator"
        )


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api/signup", tags=["signup"])

    @router.post("", status_code=202, dependencies=[Depends(limit_credential_attempts)])
    async def sign_up(body: SignUpRequest, deps: GatewayDeps = Depends(get_deps)) -> Any:
        _saas_only(deps)
        password = allowed_password(
            body.password, body.email, body.owner_name, body.tenant, body.name
        )
        token = f"{body.tenant}.{secrets.token_urlsafe(32)}"
        data = {
            "tenant_id": body.tenant,
            "name": body.name,
            "owner_email": body.email,
            "owner_name": body.owner_name,
            "password_hash": hash_password(password),
            "token_hash": token_hash(token),
        }
        envelope = Envelope(
            id=derive_event_id(body.tenant, "signup", data["token_hash"]),
            type=SignUp.TYPE,
            tenant=body.tenant,
            stream="tenant",
            actor=SIGNUP_ACTOR,
            data=data,
        )
        await send_admin_command(deps, envelope)
        link = f"{deps.settings.gateway_url()}/api/signup/confirm?token={token}"
        await deliver_link(deps.settings, body.tenant, body.email, link)
        return {
            "status": "pending",
            "tenant": body.tenant,
            "message": "check your e-mail to confirm the account",
        }

    @router.get("/confirm")
    async def confirm(
        token: str = Query(min_length=10, max_length=300), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        _saas_only(deps)
        tenant, digest = _tenant_of(token), token_hash(token)
        envelope = Envelope(
            id=derive_event_id(tenant, "confirm", digest),
            type=ConfirmSignUp.TYPE,
            tenant=tenant,
            stream="tenant",
            actor=SIGNUP_ACTOR,
            data={"token_hash": digest},
        )
        await send_admin_command(deps, envelope)
        return {"status": "confirmed", "tenant": tenant}

    return router
