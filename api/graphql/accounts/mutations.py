"""Account mutations: signing up, signing out sessions, registering third-party apps and
withdrawing consent."""

from __future__ import annotations

import strawberry
from strawberry import relay

from api.graphql.accounts.types import App, AuthorizedApp, Session, User
from api.graphql.context import Info
from api.graphql.errors import UserError, mutate
from api.graphql.ids import decode_id
from auth import accounts, apps
from fleet import account_emails


def _client_address(info: Info) -> str:
    """The address the request came from (the throttles count per client address)."""
    client = info.context.request.client
    return client.host if client else ""


@strawberry.input
class SignUpInput:
    email: str
    password: str = strawberry.field(description="At least 8 characters.")


@strawberry.type
class SignUpPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ResendVerificationEmailPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RequestPasswordResetInput:
    email: str


@strawberry.type
class RequestPasswordResetPayload:
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeSessionInput:
    session_id: relay.GlobalID


@strawberry.type
class RevokeSessionPayload:
    session: Session | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeAllSessionsInput:
    keep_current: bool = strawberry.field(
        default=False, description="Keep the session making this request signed in."
    )


@strawberry.type
class RevokeAllSessionsPayload:
    revoked_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateAppInput:
    name: str
    redirect_uris: list[str] = strawberry.field(
        description="https URIs (http only to 127.0.0.1, [::1] or localhost; a public app "
                    "also a private-use scheme like com.example.app:/callback), at most 10.")
    scopes: list[str] = strawberry.field(
        default_factory=list,
        description="What the app may ask users for: devices:read, events:read, devices:call.")
    public: bool = strawberry.field(
        default=False,
        description="A native, CLI or single-page app that cannot keep a secret: it gets "
                    "none and proves itself by PKCE alone.")


@strawberry.input
class AppInput:
    client_id: str


@strawberry.type
class CreateAppPayload:
    app: App | None = None
    client_secret: str | None = strawberry.field(
        default=None, description="Shown only in this response: store it now. Null for a "
                                  "public app, which has none.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteAppPayload:
    app: App | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RevokeAuthorizedAppPayload:
    authorized_app: AuthorizedApp | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create a platform account, then sign in at /oauth/token. "
                                     "A link to verify the email is emailed to it. At most 3 "
                                     "sign-ups an hour per address (look-alikes included) and "
                                     "10 per client address.")
    async def sign_up(self, info: Info, input: SignUpInput) -> SignUpPayload:
        async def work() -> SignUpPayload:
            user = await account_emails.sign_up(input.email, input.password,
                                                _client_address(info))
            return SignUpPayload(user=User.from_model(user))

        return await mutate(SignUpPayload, work)

    @strawberry.mutation(description="Email the viewer a new link to verify their email (the "
                                     "older links keep working until they expire). At most "
                                     "3 an hour.")
    async def resend_verification_email(self, info: Info) -> ResendVerificationEmailPayload:
        async def work() -> ResendVerificationEmailPayload:
            user = await account_emails.resend_verification(info.context.principal,
                                                            _client_address(info))
            return ResendVerificationEmailPayload(user=User.from_model(user))

        return await mutate(ResendVerificationEmailPayload, work)

    @strawberry.mutation(description="Email a link to choose a new password to the account "
                                     "using this email, if there is one: the answer is the "
                                     "same either way. At most 3 an hour per address and 10 "
                                     "per client address.")
    async def request_password_reset(self, info: Info, input: RequestPasswordResetInput
                                     ) -> RequestPasswordResetPayload:
        async def work() -> RequestPasswordResetPayload:
            await account_emails.request_password_reset(input.email,
                                                        _client_address(info))
            return RequestPasswordResetPayload()

        return await mutate(RequestPasswordResetPayload, work)

    @strawberry.mutation(description="Sign out one of the viewer's sessions.")
    async def revoke_session(self, info: Info, input: RevokeSessionInput) -> RevokeSessionPayload:
        async def work() -> RevokeSessionPayload:
            principal = info.context.require_user()
            family_id = decode_id(input.session_id, "Session", "sessionId")
            family = await accounts.revoke_session(principal, family_id)
            return RevokeSessionPayload(session=Session.from_model(family, principal.family_id))

        return await mutate(RevokeSessionPayload, work)

    @strawberry.mutation(description="Sign out every session of the viewer.")
    async def revoke_all_sessions(
        self, info: Info, input: RevokeAllSessionsInput
    ) -> RevokeAllSessionsPayload:
        async def work() -> RevokeAllSessionsPayload:
            principal = info.context.require_user()
            count = await accounts.revoke_all_sessions(principal, keep_current=input.keep_current)
            return RevokeAllSessionsPayload(revoked_count=count)

        return await mutate(RevokeAllSessionsPayload, work)


@strawberry.type
class AppMutations:
    @strawberry.mutation(description="Register a third-party app; its secret (a public app "
                                     "has none) is shown only once.")
    async def create_app(self, info: Info, input: CreateAppInput) -> CreateAppPayload:
        async def work() -> CreateAppPayload:
            client, secret = await apps.create_app(
                info.context.principal, name=input.name, redirect_uris=input.redirect_uris,
                scopes=input.scopes, public=input.public,
            )
            return CreateAppPayload(app=App.from_model(client), client_secret=secret)

        return await mutate(CreateAppPayload, work)

    @strawberry.mutation(description="Delete one of your apps: every token it holds stops "
                                     "working.")
    async def delete_app(self, info: Info, input: AppInput) -> DeleteAppPayload:
        async def work() -> DeleteAppPayload:
            client = await apps.delete_app(info.context.principal, input.client_id)
            return DeleteAppPayload(app=App.from_model(client))

        return await mutate(DeleteAppPayload, work)

    @strawberry.mutation(description="Withdraw your consent to an app: its tokens for you stop "
                                     "working at once, and it must ask again.")
    async def revoke_authorized_app(self, info: Info, input: AppInput
                                    ) -> RevokeAuthorizedAppPayload:
        async def work() -> RevokeAuthorizedAppPayload:
            consent = await apps.revoke_authorized_app(info.context.principal, input.client_id)
            return RevokeAuthorizedAppPayload(authorized_app=AuthorizedApp.from_model(consent))

        return await mutate(RevokeAuthorizedAppPayload, work)
