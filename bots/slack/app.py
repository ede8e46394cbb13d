"""The slack-bolt AsyncApp: signature verification, `/ar`, buttons, modals and thread events.

``create_slack_app`` is called by the HTTP edge (api/webhooks/slack.py). The Web API client
talks to SLACK_API_BASE and retries a 429 after its Retry-After (and connection errors once).
With ``process_before_response=False`` (production) bolt acks at once and the work continues
after the response; tests pass True to run handlers before the response, deterministically.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bots.slack import actions, commands
from bots.slack.deps import SlackDeps, build_client, is_configured

__all__ = ["SlackDeps", "build_client", "create_slack_app", "is_configured"]


def create_slack_app(deps: SlackDeps, *, process_before_response: bool = False) -> AsyncApp:
    settings = deps.settings
    if not is_configured(settings):
        raise RuntimeError("Slack needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    assert settings.slack_signing_secret is not None
    app = AsyncApp(
        client=build_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=process_before_response,
    )
    commands.register(app, deps)
    actions.register(app, deps)
    return app
