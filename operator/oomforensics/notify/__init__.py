"""Notifications: what the operator tells people on an OOM kill and a suspected leak.

`messages` builds them (pure: CloudEvents and Slack payloads from facts), `ledger` remembers
what each sink got (pure: kept in the investigation's status, so a restart finds it), and
`delivery` posts them (httpx).
"""
