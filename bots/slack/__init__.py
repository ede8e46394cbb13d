"""The staff side in Slack: slack-bolt AsyncApp, `/ar` commands, actions, views and notifications."""
