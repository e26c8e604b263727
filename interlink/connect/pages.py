"""The pages an end user sees in the connect flow, rendered on the server and usable without JavaScript.

``GET /connect/{token}`` lists the integrations the vendor allowed (or goes
straight to the only one). ``GET /connect/{token}/{integration}`` shows the
credential form of one auth scheme, generated from the integration's
declared fields. Its ``POST`` checks the credentials live and completes the
session, or, for an authorization code scheme, sends the browser to the
identity provider, which returns it to ``GET /connect/oauth/callback``.

Every page is sent with a Content Security Policy that allows only its own
inline stylesheet (by nonce), no framing, and no Referer header, because
the link token is part of the page URL.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from interlink.api.services import Services, get_services
from interlink.connect import authorize
from interlink.connect.messages import Explanation, explain
from interlink.connect.sessions import (
    ConnectionMissing,
    SessionBusy,
    allowed_integrations,
    complete_session_with,
    find_session,
    hold,
    release,
    session_problem,
)
from interlink.connections import InvalidConnectionInput
from interlink.connectors import oauth
from interlink.connectors.base import AuthScheme, CredentialField, Integration
from interlink.store.link_sessions import LinkSessionRow
from interlink.store.oauth import oauth_client_state
from interlink.webhooks import UrlGuard

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
ServicesDep = Annotated[Services, Depends(get_services)]
MAX_FORM_BYTES = 64 * 1024

_templates = Environment(
    loader=PackageLoader("interlink.connect", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

_PROBLEMS = {
    "unknown": (404, "This link is not valid", "Check that you opened the whole link you were sent."),
    "expired": (
        410,
        "This link has expired",
        "Links to connect a system work for a limited time. Ask the company that sent it for a new one.",
    ),
    "completed": (
        410,
        "This link was already used",
        "The system is connected. To connect again, ask the company that sent the link for a new one.",
    ),
}


@dataclass(frozen=True)
class FieldView:
    """One input of the credential form as the template shows it."""

    name: str
    label: str
    help: str
    secret: bool
    required: bool
    value: str = ""
    error: str | None = None


def render(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = _templates.get_template(template).render(nonce=nonce, **context)
    response = HTMLResponse(body, status_code=status)
    _secure(response, nonce)
    return response


def _secure(response: Response, nonce: str | None = None) -> None:
    style = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {style}; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"


def _redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _secure(response)
    return response


def problem_page(problem: str) -> HTMLResponse:
    status, title, text = _PROBLEMS[problem]
    return render("message.html", status=status, title=title, text=text)


def _guard(services: Services) -> UrlGuard:
    return UrlGuard.from_settings(services.settings)


async def usable_schemes(services: Services, integration: Integration) -> list[AuthScheme]:
    """List the schemes a user can choose; an authorization code scheme needs the operator's OAuth client."""
    usable = []
    for scheme in integration.auth_schemes:
        if oauth.authorization_code_spec(integration.name, scheme.name) is not None:
            async with services.db.read() as connection:
                state = await oauth_client_state(connection, integration.name)
            if not state.configured:
                continue
        usable.append(scheme)
    return usable


def _authorization_code_scheme(integration: Integration) -> AuthScheme | None:
    return next(
        (
            scheme
            for scheme in integration.auth_schemes
            if oauth.authorization_code_spec(integration.name, scheme.name) is not None
        ),
        None,
    )


def _form_fields(integration: Integration, scheme: AuthScheme) -> list[CredentialField]:
    if oauth.authorization_code_spec(integration.name, scheme.name) is not None:
        return oauth.user_fields(scheme.fields)
    return list(scheme.fields)


async def _form_page(
    services: Services,
    row: LinkSessionRow,
    token: str,
    integration: Integration,
    scheme: AuthScheme,
    *,
    values: Mapping[str, str] | None = None,
    explanation: Explanation | None = None,
    field_errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    values = values or {}
    field_errors = dict(field_errors or {})
    if explanation is not None and explanation.field is not None:
        field_errors.setdefault(explanation.field, explanation.message)
    fields = [
        FieldView(
            name=field.name,
            label=field.label,
            help=field.help,
            secret=field.secret,
            required=field.required,
            # A secret is never sent back to the browser.
            value="" if field.secret else values.get(field.name, ""),
            error=field_errors.get(field.name),
        )
        for field in _form_fields(integration, scheme)
    ]
    schemes = await usable_schemes(services, integration)
    return render(
        "form.html",
        status=status,
        title=f"Connect {integration.label}",
        token=token,
        integration=integration,
        scheme=scheme,
        schemes=schemes if len(schemes) > 1 else [],
        fields=fields,
        explanation=explanation,
        errors_count=len(field_errors),
        sign_in=oauth.authorization_code_spec(integration.name, scheme.name) is not None,
        reconnect=row.connection_id is not None,
        show_back=len(allowed_integrations(row)) > 1,
    )


async def _open_session(services: Services, token: str) -> LinkSessionRow | HTMLResponse:
    row = await find_session(services, token)
    problem = session_problem(row, services.clock())
    if problem is not None or row is None:
        return problem_page(problem or "unknown")
    return row


def _allowed(row: LinkSessionRow, name: str) -> Integration | None:
    return next((integration for integration in allowed_integrations(row) if integration.name == name), None)


@router.get("/connect/oauth/callback", response_class=HTMLResponse)
async def oauth_callback(request: Request, services: ServicesDep) -> Response:
    """Finish a sign-in at an identity provider, then check the tokens live and complete the session."""
    params = request.query_params
    try:
        authorized = await authorize.finish(
            services,
            state=params.get("state", ""),
            code=params.get("code"),
            error=params.get("error"),
            error_description=params.get("error_description"),
            browser_value=request.cookies.get(authorize.BROWSER_COOKIE),
        )
    except authorize.AuthorizationFailed as exc:
        return await _authorization_failed(services, exc)
    response = await _complete(
        services,
        authorized.row,
        authorized.token,
        authorized.integration,
        authorized.scheme,
        authorized.credentials,
    )
    response.delete_cookie(authorize.BROWSER_COOKIE, path="/connect")
    return response


async def _authorization_failed(services: Services, exc: authorize.AuthorizationFailed) -> HTMLResponse:
    row, token, integration = exc.row, exc.token, exc.integration
    usable = row is not None and session_problem(row, services.clock()) is None
    scheme = _authorization_code_scheme(integration) if integration is not None else None
    if not usable or row is None or token is None or integration is None or scheme is None:
        return render(
            "message.html", status=400, title="The sign-in did not finish", text=str(exc), detail=exc.detail
        )
    return await _form_page(
        services,
        row,
        token,
        integration,
        scheme,
        values=exc.values,
        explanation=Explanation(str(exc), None, exc.detail),
        status=400,
    )


@router.get("/connect/{token}", response_class=HTMLResponse)
async def choose_integration(token: str, services: ServicesDep) -> Response:
    opened = await _open_session(services, token)
    if isinstance(opened, HTMLResponse):
        return opened
    choices = allowed_integrations(opened)
    if len(choices) == 1:
        return _redirect(f"/connect/{token}/{choices[0].name}")
    return render(
        "integrations.html",
        title="Connect your system",
        token=token,
        integrations=choices,
        end_user_name=opened.end_user_name,
    )


@router.get("/connect/{token}/{integration_name}", response_class=HTMLResponse)
async def credential_form(
    token: str, integration_name: str, services: ServicesDep, scheme: str | None = None
) -> Response:
    opened = await _open_session(services, token)
    if isinstance(opened, HTMLResponse):
        return opened
    integration = _allowed(opened, integration_name)
    if integration is None:
        return problem_page("unknown")
    schemes = await usable_schemes(services, integration)
    chosen = next((s for s in schemes if s.name == scheme), schemes[0] if schemes else None)
    if chosen is None:
        return render(
            "message.html",
            status=503,
            title=f"{integration.label} cannot be connected yet",
            text="Sign-in to this system is not set up in this Interlink yet. "
            "Ask the company that sent you this link to set it up.",
        )
    return await _form_page(services, opened, token, integration, chosen)


@router.post("/connect/{token}/{integration_name}", response_class=HTMLResponse)
async def submit_credentials(
    token: str, integration_name: str, request: Request, services: ServicesDep
) -> Response:
    """Check the typed credentials and complete the session, or start the sign-in at the identity provider."""
    opened = await _open_session(services, token)
    if isinstance(opened, HTMLResponse):
        return opened
    integration = _allowed(opened, integration_name)
    if integration is None:
        return problem_page("unknown")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return render(
            "message.html", status=413, title="The form is too large", text="Go back and try again."
        )
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    schemes = await usable_schemes(services, integration)
    scheme = next((s for s in schemes if s.name == form.get("auth_scheme")), None)
    if scheme is None:
        return problem_page("unknown")

    fields = _form_fields(integration, scheme)
    typed = {
        field.name: form.get(f"credentials.{field.name}", "").strip()
        for field in fields
        if form.get(f"credentials.{field.name}", "").strip()
    }
    missing = {
        field.name: f"Enter the {field.label}."
        for field in fields
        if field.required and field.name not in typed
    }
    if missing:
        first = next(iter(missing.values()))
        count = len(missing)
        summary = first if count == 1 else f"{count} required fields are empty. {first}"
        return await _form_page(
            services,
            opened,
            token,
            integration,
            scheme,
            values=typed,
            explanation=Explanation(summary),
            field_errors=missing,
            status=422,
        )

    spec = oauth.authorization_code_spec(integration.name, scheme.name)
    if spec is not None:
        try:
            start = await authorize.begin(services, opened, token, integration, spec, typed)
        except authorize.AuthorizationFailed as exc:
            return await _form_page(
                services,
                opened,
                token,
                integration,
                scheme,
                values=typed,
                explanation=Explanation(str(exc), None, exc.detail),
                status=422,
            )
        response = RedirectResponse(start.url, status_code=303)
        _secure(response)
        response.set_cookie(
            authorize.BROWSER_COOKIE,
            start.browser_value,
            max_age=int(authorize.AUTHORIZATION_LIFETIME.total_seconds()),
            path="/connect",
            httponly=True,
            samesite="lax",
            secure=services.settings.base_url.startswith("https://"),
        )
        return response
    return await _complete(services, opened, token, integration, scheme, typed)


async def _complete(
    services: Services,
    row: LinkSessionRow,
    token: str,
    integration: Integration,
    scheme: AuthScheme,
    credentials: Mapping[str, str],
) -> Response:
    try:
        await hold(services, row)
    except SessionBusy:
        return render(
            "message.html",
            status=409,
            title="Already being checked",
            text="This link is being used in another window. Wait a moment, then reload this page.",
        )
    try:
        completion = await complete_session_with(
            services, _guard(services), row, integration, scheme, credentials
        )
    except InvalidConnectionInput as exc:
        await release(services, row)
        logger.info("connect.check_failed link_session_id=%s integration=%s", row.id, integration.name)
        explanation = explain(integration.label, scheme, exc)
        return await _form_page(
            services, row, token, integration, scheme, values=credentials, explanation=explanation, status=422
        )
    except ConnectionMissing:
        await release(services, row)
        return render(
            "message.html",
            status=410,
            title="This connection no longer exists",
            text="Ask the company that sent the link for a new one.",
        )
    except BaseException:
        await release(services, row)
        raise
    if completion.redirect_to is not None:
        return _redirect(completion.redirect_to)
    return render(
        "done.html",
        title=f"{integration.label} is connected",
        integration=integration,
        reconnect=row.connection_id is not None,
    )
