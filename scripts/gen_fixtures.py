#!/usr/bin/env python3
"""Generate the deterministic audit-event fixture for audit-export.

Writes ``fixtures/audit_events.jsonl``: 2,400 audit events, one compact JSON
object per line (UTF-8, no BOM, ``ensure_ascii=False``, ``\\n`` line ends),
for three organizations (acme 1100, globex 800, initech 500) spread over
2025-07-01 .. 2026-01-31 UTC. Lines are sorted by ``occurred_at`` and ``id``
runs 1..2400 in that order (a few events deliberately share a timestamp, so
the (occurred_at, id) tie-breaker gets exercised).

Every event has the same key order::

    id, organization_id, occurred_at, stream, action,
    actor{type,id,name,email}, target{type,id,name},
    context{ip_address,user_agent,request_id}, changed_data, details

Absent values are JSON ``null``, never omitted keys. ``actor``, ``target`` and
``context`` may be null as a whole (system/scheduled events), and individual
fields inside them may be null. ``changed_data``/``details`` are objects
(often nested, with arrays) or null.

Streams, roughly 60/20/20:

* ``audit``    - logins, role changes, page edits, exports, settings, tokens
* ``scim``     - SCIM user provisioning and group membership (IdP as actor)
* ``workflow`` - workflow definition and run lifecycle events

Why the odd data: the fixture is meant to break exporters. Besides realistic
events it seeds "hard values" into names, user agents and details, each in
at least 5 events and in every organization:

* CSV quoting: commas, double quotes, embedded ``\\n`` and ``\\r\\n``, tabs
* Unicode: é, ü, 日本語, emoji (🚀), right-to-left Arabic
* CSV/formula injection: values starting with ``=``, ``+``, ``-``, ``@``,
  spaces before ``=``, a leading tab and a leading carriage return
* SQL LIKE escaping: literal ``%``, ``_`` and backslashes in target names
* Redaction: secret-looking keys (``password``, ``token``, ``secretRef``,
  ``api_key``) inside ``details`` and ``changed_data``, nested too

Only IP addresses from documentation ranges (203.0.113.0/24,
198.51.100.0/24, 2001:db8::/32) and ``.example`` domains are used.

Output is byte-for-byte reproducible: a fixed seed, stdlib only, no
dependence on the clock, locale or hash randomisation.

Usage::

    python3 scripts/gen_fixtures.py [--out fixtures/audit_events.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20250701
TOTAL = 2400
ORG_COUNTS = {"acme": 1100, "globex": 800, "initech": 500}
ORG_NAMES = {"acme": "Acme Corp", "globex": "Globex, Inc.", "initech": "Initech"}
START = datetime(2025, 7, 1, tzinfo=timezone.utc)
END = datetime(2026, 2, 1, tzinfo=timezone.utc)  # exclusive
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "fixtures" / "audit_events.jsonl"

# --------------------------------------------------------------------------
# People. (name, email local part); a None local part means a null e-mail.
# Weights later make the first few users in each org far more active.
# --------------------------------------------------------------------------
USERS = {
    "acme": [
        ("Ada Lovelace", "ada"),
        ("Grace Hopper", "grace.hopper"),
        ("Zoë Müller", "zoe.mueller"),
        ("José Álvarez", "jose.alvarez"),
        ("Alan Turing", "alan"),
        ("Smith, Jordan", "jordan.smith"),
        ("Katherine Johnson", "kjohnson"),
        ("Linus Ødegård", "linus.odegard"),
        ("Margaret Hamilton", "margaret"),
        ("Edsger Dijkstra", "edsger"),
        ("Barbara Liskov", "barbara.liskov"),
        ("Ken Thompson", None),
    ],
    "globex": [
        ("Hank Scorpio", "hank"),
        ('Robert "Bobby" Tables', "bobby.tables"),
        ("Frank Grimes", "frank.grimes"),
        ("Renée Dubois", "renee.dubois"),
        ("Jürgen Weiß", "juergen.weiss"),
        ("Lindsey Naegle", "lindsey"),
        ("O'Brien, Pat", "pat.obrien"),
        ("Mindy Simmons", "mindy"),
        ("山田 花子", "hanako.yamada"),
    ],
    "initech": [
        ("Bill Lumbergh", "bill.lumbergh"),
        ("Peter Gibbons", "peter"),
        ("Milton Waddams", "milton"),
        ("Samir Nagheenanajar", "samir"),
        ("Michael Bolton", "michael.bolton"),
        ("Joanna Müller-Lüdenscheidt", "joanna"),
        ("田中 太郎", "taro.tanaka"),
        ("مريم الحسن", "maryam.alhassan"),
        ("Tom Smykowski", "tom"),
        ("Dom Portwood", "dom"),
        ("Nina Andrés", None),
    ],
}
# Extra people only ever seen as SCIM targets (provisioned, never log in).
SCIM_PEOPLE = [
    "Chloé Martin", "Lukas Schröder", "Priya Raman", "Omar Haddad",
    "Sofía Herrera", "Wei Zhang", "佐藤 健", "Aisha Bello", "Noah Kim",
    "Émile Roux", "أحمد منصور", "Ingrid Næss",
]

ROLES = ["viewer", "editor", "admin", "owner", "billing_admin"]
GROUPS = ["Engineering", "Sales, EMEA", "Support", "Finance & Ops",
          "Design 🎨", "Product", "R&D — Zürich"]
SPACES = ["General", "Engineering", "Marketing", "Legal", "HR"]
TITLES = ["Engineer", "Senior Engineer", "Manager", "Director", "Analyst",
          "Support Lead", "VP, Sales"]
DEPARTMENTS = ["Engineering", "Sales", "Support", "Finance", "Marketing"]

PAGE_NAMES = [
    "Roadmap", "Q3 OKRs", "Onboarding Guide", "Incident Postmortem 2025-08",
    "Release Notes", "Team Handbook", "Security Policy", "Pricing Page Draft",
    "Hiring Plan", "Architecture Overview", "Customer Interviews",
    "Sprint Retro", "Budget FY26", "On-call Runbook", "Brand Guidelines",
    # a sprinkling of naturally awkward names
    "Q3, Q4 planning", 'The "Big" Launch', "Café résumé notes",
    "Grüße aus München", "日本語のドキュメント", "Launch 🚀 checklist",
    "تقرير المبيعات", "100% uptime plan", "api_v2_migration",
    "Docs\\Internal\\FAQ",
]

WORKFLOWS = {
    "acme": [
        ("Employee onboarding", "employee_onboarding"),
        ("Nightly CRM sync", "nightly_crm_sync"),
        ("Invoice approval, EU", "invoice_approval_eu"),
        ("Offboarding 🚪", "offboarding"),
        ('Escalate "P1" incidents', "escalate_p1"),
    ],
    "globex": [
        ("Lead routing", "lead_routing"),
        ("Contrat qualité — révision", "contrat_qualite"),
        ("Weekly report", "weekly_report"),
        ("Doomsday device maintenance", "doomsday_maintenance"),
    ],
    "initech": [
        ("TPS report reminder", "tps_report_reminder"),
        ("Stapler requisition", "stapler_requisition"),
        ("経費精算フロー", "expense_flow"),
        ("Layoff notification", "layoff_notification"),
    ],
}
RUN_STATUSES = ["running", "succeeded", "failed", "cancelled", "waiting"]
STEP_NAMES = ["fetch_user", "create_account", "notify_manager", "wait_approval",
              "sync_crm", "send_email", "post_slack", "archive"]

USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36 Edg/127.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "audit-cli/1.4.2 (linux; x86_64)",
    "curl/8.5.0",
    "python-requests/2.32.3",
]
SCIM_USER_AGENTS = {
    "okta": "Okta SCIM Client 1.0.0",
    "azure_ad": "Azure AD SCIM Provisioning (Microsoft Entra ID)",
}
SCIM_CLIENTS = {
    "acme": ("okta", "Okta SCIM"),
    "globex": ("azure_ad", "Microsoft Entra ID"),
    "initech": ("okta", "Okta"),
}

# --------------------------------------------------------------------------
# Hard values. Each category is injected into at least HARD_PER_ORG events
# of every organization (on top of the awkward values that occur naturally).
# Categories in TARGET_NAME_ONLY always go into target.name.
# --------------------------------------------------------------------------
HARD_PER_ORG = 3
HARD_VALUES = {
    "comma": ["Q3, Q4 planning", "Smith, Jordan - notes", "a,b,c"],
    "double_quote": ['The "Big" Launch', 'He said "ship it"', '""quoted""'],
    "newline_lf": ["line one\nline two", "Multi-line\nnote\n"],
    "newline_crlf": ["first line\r\nsecond line", "Windows\r\nline ending"],
    "tab": ["col1\tcol2", "name:\tvalue"],
    "e_acute": ["Café résumé", "Rapport d'équipe"],
    "u_umlaut": ["Grüße aus Zürich", "Müller über alles"],
    "japanese": ["日本語のページ", "会議メモ 日本語"],
    "emoji": ["Launch 🚀", "🚀 Ship it 🎉"],
    "arabic": ["تقرير المبيعات", "مرحبا بالعالم"],
    "formula_eq": ['=HYPERLINK("http://evil.example","x")', "=1+1",
                   "=cmd|' /C calc'!A0"],
    "formula_plus": ["+1 555 0100", "+SUM(A1:A2)"],
    "formula_minus": ["-2 days", "-1+1"],
    "formula_at": ["@channel", "@SUM(1,2)"],
    "space_eq": ["   =1+2", " =HYPERLINK(\"http://evil.example\")"],
    "leading_tab": ["\t=1+1", "\tIndented title"],
    "leading_cr": ["\r=1+1", "\rCarriage return first"],
    "percent": ["100% complete", "50%_off promo", "%"],
    "underscore": ["snake_case_page", "_draft", "a_b"],
    "backslash": ["C:\\Users\\ada\\notes.txt", "path\\to\\page",
                  "100%\\_literal"],
}
TARGET_NAME_ONLY = {"percent", "underscore", "backslash"}


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # ---- small helpers ---------------------------------------------------
    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def request_id(self) -> str:
        return "req_" + self.hex(16)

    def ip(self) -> str:
        r = self.rng.random()
        if r < 0.45:
            return f"203.0.113.{self.rng.randint(1, 254)}"
        if r < 0.85:
            return f"198.51.100.{self.rng.randint(1, 254)}"
        return "2001:db8:{:x}:{:x}::{:x}".format(
            self.rng.randint(0, 0xFFFF), self.rng.randint(0, 0xFFFF),
            self.rng.randint(1, 0xFFFF))

    def timestamp_ms(self) -> int:
        days = (END - START).days
        day = self.rng.randrange(days)
        if self.rng.random() < 0.8:  # mostly working hours
            hour = self.rng.randint(7, 19)
        else:
            hour = self.rng.randint(0, 23)
        dt = START + timedelta(days=day, hours=hour,
                               minutes=self.rng.randint(0, 59),
                               seconds=self.rng.randint(0, 59))
        epoch_s = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(seconds=1)
        return epoch_s * 1000 + self.rng.randint(1, 999)  # never .000

    def context(self, user_agent: str | None = None, *, allow_nulls=True) -> dict:
        ctx = {
            "ip_address": self.ip(),
            "user_agent": user_agent or self.rng.choice(USER_AGENTS),
            "request_id": self.request_id(),
        }
        if allow_nulls:
            r = self.rng.random()
            if r < 0.04:
                ctx["ip_address"] = None
            elif r < 0.08:
                ctx["user_agent"] = None
            elif r < 0.10:
                ctx["request_id"] = None
        return ctx

    # ---- organisation state -----------------------------------------------
    def build_org(self, org: str) -> dict:
        users = []
        base = {"acme": 100, "globex": 200, "initech": 300}[org]
        for i, (name, local) in enumerate(USERS[org]):
            users.append({
                "type": "user",
                "id": f"u_{base + i + 1}",
                "name": name,
                "email": f"{local}@{org}.example" if local else None,
            })
        # Skewed activity: a few power users dominate.
        weights = [max(1.0, 24.0 / (i + 1)) for i in range(len(users))]
        workflows = []
        for i, (name, key) in enumerate(WORKFLOWS[org]):
            workflows.append({
                "id": f"wfd_{org[:2]}{i + 1:03d}",
                "name": name,
                "key": key,
                "version": self.rng.randint(1, 4),
            })
        scim_people = []
        for i, name in enumerate(self.rng.sample(SCIM_PEOPLE, 6)):
            local = f"scim.user{i + 1}"
            scim_people.append({
                "type": "user", "id": f"u_{base + 50 + i}", "name": name,
                "email": f"{local}@{org}.example",
            })
        return {"org": org, "users": users, "weights": weights,
                "workflows": workflows, "scim_people": scim_people,
                "run_seq": 0}

    def user(self, st: dict) -> dict:
        return dict(self.rng.choices(st["users"], weights=st["weights"])[0])

    def admin(self, st: dict) -> dict:
        # The first three users of every org are the admins.
        return dict(self.rng.choice(st["users"][:3]))

    @staticmethod
    def as_target(u: dict) -> dict:
        return {"type": "user", "id": u["id"], "name": u["name"]}

    def page(self) -> dict:
        return {"type": "page", "id": f"p_{self.rng.randint(1, 400)}",
                "name": self.rng.choice(PAGE_NAMES)}

    @staticmethod
    def system_actor() -> dict:
        return {"type": "system", "id": "system", "name": None, "email": None}

    # ---- streams ------------------------------------------------------------
    def audit_event(self, st: dict) -> tuple:
        org = st["org"]
        action = self.rng.choices(
            ["user.login", "user.logout", "user.login_failed",
             "user.password_changed", "role.assigned", "role.revoked",
             "page.created", "page.updated", "page.deleted",
             "audit_log.exported", "settings.updated", "api_token.created"],
            weights=[25, 12, 8, 4, 5, 3, 10, 18, 4, 3, 5, 3])[0]
        actor = self.user(st)
        target = None
        ctx = self.context()
        changed = None
        details = None
        rng = self.rng

        if action == "user.login":
            target = self.as_target(actor)
            method = rng.choice(["password", "sso", "sso", "passkey"])
            details = {"method": method, "mfa": rng.random() < 0.7,
                       "sso_provider": "okta" if method == "sso" else None}
        elif action == "user.logout":
            if rng.random() < 0.3:
                actor = rng.choice([None, self.system_actor()])
                details = {"reason": "session_expired",
                           "session": {"idle_minutes": rng.randint(30, 600)}}
            else:
                details = None if rng.random() < 0.5 else {"reason": "user_initiated"}
        elif action == "user.login_failed":
            victim = self.user(st)
            # Unknown user: actor fields partly null.
            if rng.random() < 0.35:
                actor = {"type": "user", "id": None, "name": None,
                         "email": f"unknown{rng.randint(1, 99)}@{org}.example"}
            else:
                actor = victim
            details = {"reason": rng.choice(["invalid_password", "mfa_failed",
                                             "account_locked"]),
                       "attempt": rng.randint(1, 6)}
            if rng.random() < 0.3:
                details["credentials"] = {"username": actor["email"],
                                          "password": "hunter2"}
        elif action == "user.password_changed":
            target = self.as_target(actor)
            changed = {"password": {"from": "********", "to": "********"}}
            details = {"forced": rng.random() < 0.2, "sessions_revoked": rng.randint(0, 4)}
        elif action in ("role.assigned", "role.revoked"):
            actor = self.admin(st)
            subject = self.user(st)
            target = self.as_target(subject)
            if action == "role.assigned":
                frm, to = rng.sample(ROLES, 2)
            else:  # revoked: drop back to viewer, or to no role at all
                frm = rng.choice(ROLES[1:])
                to = "viewer" if rng.random() < 0.7 else None
            changed = {"role": {"from": frm, "to": to}}
            scope = rng.choice(["organization", "space"])
            details = {"scope": scope,
                       "space": ({"id": f"sp_{rng.randint(1, 20)}",
                                  "name": rng.choice(SPACES)}
                                 if scope == "space" else None)}
        elif action == "page.created":
            target = self.page()
            changed = {"title": {"from": None, "to": target["name"]}}
            details = {"space": {"id": f"sp_{rng.randint(1, 20)}",
                                 "name": rng.choice(SPACES)},
                       "tags": rng.sample(["draft", "internal", "q3", "rfc",
                                           "public"], rng.randint(0, 3))}
        elif action == "page.updated":
            target = self.page()
            if rng.random() < 0.4:
                changed = {"title": {"from": rng.choice(PAGE_NAMES),
                                     "to": target["name"]}}
            else:
                changed = {"content": {"blocks_added": rng.randint(0, 12),
                                       "blocks_removed": rng.randint(0, 5)}}
            details = {"version": rng.randint(2, 80),
                       "editor": {"client": rng.choice(["web", "desktop", "api"]),
                                  "collaborators": [u["id"] for u in rng.sample(
                                      st["users"], rng.randint(0, 2))]}}
            if rng.random() < 0.3:
                details = None
        elif action == "page.deleted":
            target = self.page()
            details = {"permanent": rng.random() < 0.25, "trash_retention_days": 30}
        elif action == "audit_log.exported":
            actor = self.admin(st)
            target = {"type": "audit_log", "id": "audit_log", "name": "Audit log"}
            details = {"format": rng.choice(["csv", "json", "jsonl"]),
                       "filters": {"from": "2025-07-01T00:00:00.000Z",
                                   "to": None,
                                   "actions": rng.sample(
                                       ["user.login", "role.assigned",
                                        "page.deleted"], rng.randint(0, 2)),
                                   "actor_email": (actor["email"]
                                                   if rng.random() < 0.3 else None)},
                       "row_count": rng.randint(0, 50000)}
        elif action == "settings.updated":
            if rng.random() < 0.25:
                actor = self.system_actor()
                ctx = None
            else:
                actor = self.admin(st)
            target = {"type": "organization", "id": org, "name": ORG_NAMES[org]}
            kind = rng.choice(["sso", "session", "ldap", "webhook"])
            if kind == "sso":
                changed = {"sso_enforced": {"from": False, "to": True}}
                details = {"idp": {"type": "saml", "entity_id":
                                   f"https://idp.{org}.example/saml"}}
            elif kind == "session":
                changed = {"session_timeout_minutes": {"from": 60,
                                                       "to": rng.choice([30, 120, 480])}}
                details = None
            elif kind == "ldap":
                changed = {"directory_sync": {"from": None, "to": "ldap"}}
                details = {"connection": {"type": "ldap",
                                          "host": f"ldap.{org}.example",
                                          "secretRef": "vault:kv/ldap",
                                          "password": "hunter2"}}
            else:
                changed = {"webhooks": {"from": [], "to": [
                    {"url": f"https://hooks.{org}.example/audit",
                     "events": ["*"]}]}}
                details = {"webhook": {"signing": {"secretRef": "vault:kv/webhook",
                                                   "token": "whsec_" + self.hex(24)}}}
        elif action == "api_token.created":
            target = {"type": "api_token", "id": "tok_" + self.hex(8),
                      "name": rng.choice(["CI deploy", "Terraform", "Backup job",
                                          "Grafana, read-only", None])}
            details = {"scopes": rng.sample(["audit:read", "pages:write",
                                             "users:read", "admin"],
                                            rng.randint(1, 3)),
                       "expires_at": rng.choice([None, "2026-06-30T00:00:00.000Z"]),
                       "token": "atk_" + self.hex(32)}
            if rng.random() < 0.5:
                details["api_key"] = "ak_live_" + self.hex(24)
        return "audit", action, actor, target, ctx, changed, details

    def scim_event(self, st: dict) -> tuple:
        org = st["org"]
        rng = self.rng
        action = rng.choices(
            ["scim.user.provisioned", "scim.user.updated",
             "scim.user.deprovisioned", "scim.group.member_added",
             "scim.group.member_removed"],
            weights=[30, 30, 10, 20, 10])[0]
        client_id, client_name = SCIM_CLIENTS[org]
        actor = {"type": "scim_client", "id": client_id, "name": client_name,
                 "email": None}
        r = rng.random()
        if r < 0.05:
            actor = None
        elif r < 0.10:
            actor = self.admin(st)  # manual sync triggered from the UI
        ctx = self.context(SCIM_USER_AGENTS[client_id])
        person = rng.choice(st["scim_people"] + st["users"])
        changed = None
        details = None
        scim_id = self.hex(8) + "-" + self.hex(4) + "-" + self.hex(4)
        if action.startswith("scim.user."):
            target = self.as_target(person)
            if action == "scim.user.provisioned":
                changed = {"active": {"from": None, "to": True},
                           "email": {"from": None, "to": person["email"]}}
                details = {"externalId": scim_id,
                           "attributes": {"title": rng.choice(TITLES),
                                          "department": rng.choice(DEPARTMENTS),
                                          "emails": [{"value": person["email"],
                                                      "primary": True}]}}
                if rng.random() < 0.3:
                    details["client"] = {"token": "scim_" + self.hex(20)}
            elif action == "scim.user.updated":
                attr = rng.choice(["title", "department"])
                pool = TITLES if attr == "title" else DEPARTMENTS
                frm, to = rng.sample(pool, 2)
                changed = {attr: {"from": frm, "to": to}}
                details = {"externalId": scim_id,
                           "scim_request": {"method": "PATCH",
                                            "path": f"/scim/v2/Users/{scim_id}",
                                            "operations": [{"op": "replace",
                                                            "path": attr,
                                                            "value": to}]}}
            else:
                changed = {"active": {"from": True, "to": False}}
                details = {"externalId": scim_id, "reason": rng.choice(
                    ["terminated", "contractor_ended", None])}
        else:
            group = rng.choice(GROUPS)
            target = {"type": "group", "id": f"grp_{GROUPS.index(group) + 1:02d}",
                      "name": group}
            details = {"member": {"id": person["id"], "email": person["email"],
                                  "name": person["name"]},
                       "externalId": scim_id}
        return "scim", action, actor, target, ctx, changed, details

    def workflow_event(self, st: dict) -> tuple:
        rng = self.rng
        action = rng.choices(
            ["workflow_definition_create", "workflow_definition_update",
             "workflow_definition_metadata_update", "workflow_definition_delete",
             "workflow_definition_publish", "workflow_run_start",
             "workflow_run_cancel", "workflow_run_resume", "workflow_run_retry",
             "workflow_run_replay", "workflow_run_requeue_event"],
            weights=[5, 10, 5, 2, 6, 30, 6, 5, 8, 4, 5])[0]
        wf = rng.choice(st["workflows"])
        actor = self.user(st)
        ctx = self.context()
        changed = None
        details = {"workflow_name": wf["name"], "workflow_key": wf["key"],
                   "workflow_version": wf["version"], "run_status": None,
                   "reason": None, "step_path": None}
        if action.startswith("workflow_definition_"):
            target = {"type": "workflow_definition", "id": wf["id"],
                      "name": wf["name"]}
            if action == "workflow_definition_create":
                details["workflow_version"] = 1
                details["definition"] = {
                    "trigger": {"type": rng.choice(["schedule", "webhook",
                                                    "event"]),
                                "cron": rng.choice([None, "0 2 * * *"])},
                    "steps": [{"id": s, "type": "http",
                               "config": {"url": f"https://api.{st['org']}.example/{s}",
                                          "api_key": "sk_test_" + self.hex(16)}}
                              for s in rng.sample(STEP_NAMES, 2)],
                }
            elif action == "workflow_definition_update":
                n = rng.randint(2, 8)
                changed = {"steps": {"from": n, "to": n + rng.choice([-1, 1, 2])},
                           "version": {"from": wf["version"],
                                       "to": wf["version"] + 1}}
                wf["version"] += 1
                details["workflow_version"] = wf["version"]
                if rng.random() < 0.4:
                    details["connection"] = {"secretRef": "vault:kv/db",
                                             "password": "hunter2"}
            elif action == "workflow_definition_metadata_update":
                changed = {"description": {"from": None if rng.random() < 0.5
                                           else "Old description",
                                           "to": "Runs " + wf["name"]},
                           "labels": {"from": ["beta"],
                                      "to": rng.sample(["prod", "hr", "finance",
                                                        "critical"], 2)}}
            elif action == "workflow_definition_delete":
                details["reason"] = rng.choice(["obsolete", "duplicate", None])
            else:  # publish
                details["published_by"] = {"id": actor["id"], "email": actor["email"]}
        else:
            st["run_seq"] += 1
            run_no = st["run_seq"]
            target = {"type": "workflow_run", "id": "wfr_" + self.hex(12),
                      "name": f"{wf['name']} #{run_no}"}
            step_path = "/".join(rng.sample(STEP_NAMES, rng.randint(1, 3)))
            if action == "workflow_run_start":
                details["run_status"] = "running"
                if rng.random() < 0.45:  # started by a schedule or webhook
                    actor = rng.choice([None, self.system_actor()])
                    ctx = rng.choice([None, {"ip_address": None,
                                             "user_agent": None,
                                             "request_id": self.request_id()}])
                details["trigger"] = {"type": rng.choice(["schedule", "webhook",
                                                          "manual"]),
                                      "payload": {"user_id": self.user(st)["id"],
                                                  "attempt": 1}}
            elif action == "workflow_run_cancel":
                details["run_status"] = "cancelled"
                details["reason"] = rng.choice(["user_requested", "timeout",
                                                "superseded"])
                details["step_path"] = step_path
            elif action == "workflow_run_resume":
                details["run_status"] = "running"
                details["step_path"] = step_path
                details["reason"] = "approval_granted"
            elif action == "workflow_run_retry":
                details["run_status"] = rng.choice(["failed", "running"])
                details["step_path"] = step_path
                details["reason"] = rng.choice(["http 503 from upstream",
                                                "timeout after 30s", None])
                details["error"] = {"code": rng.choice(["E_TIMEOUT", "E_HTTP",
                                                        "E_AUTH"]),
                                    "attempts": rng.randint(1, 5)}
            elif action == "workflow_run_replay":
                details["run_status"] = "running"
                details["replay_of"] = "wfr_" + self.hex(12)
                details["step_path"] = step_path
            else:  # requeue_event
                details["run_status"] = rng.choice(RUN_STATUSES)
                details["event"] = {"id": "evt_" + self.hex(10),
                                    "queue": "workflow-events",
                                    "headers": {"authorization": None,
                                                "token": "evtok_" + self.hex(16)}}
                details["step_path"] = step_path
        return "workflow", action, actor, target, ctx, changed, details

    # ---- hard values ----------------------------------------------------------
    def inject(self, ev: dict, category: str, idx: int) -> None:
        values = HARD_VALUES[category]
        value = values[idx % len(values)]
        if category in TARGET_NAME_ONLY:
            ev["target"]["name"] = value
            return
        slots = []
        if ev["target"] is not None and "name" in ev["target"]:
            slots.append("target")
        if ev["context"] is not None:
            slots.append("user_agent")
        slots.append("details")
        slot = slots[idx % len(slots)]
        if slot == "target":
            ev["target"]["name"] = value
        elif slot == "user_agent":
            ev["context"]["user_agent"] = value
        else:
            if ev["details"] is None:
                ev["details"] = {}
            ev["details"]["note"] = value

    # ---- main ---------------------------------------------------------------------
    def generate(self) -> list:
        assert sum(ORG_COUNTS.values()) == TOTAL
        rows = []  # (occurred_at_ms, seq, event-without-id)
        seq = 0
        for org, count in ORG_COUNTS.items():
            st = self.build_org(org)
            org_rows = []
            for _ in range(count):
                r = self.rng.random()
                if r < 0.60:
                    parts = self.audit_event(st)
                elif r < 0.80:
                    parts = self.scim_event(st)
                else:
                    parts = self.workflow_event(st)
                stream, action, actor, target, ctx, changed, details = parts
                ev = {
                    "organization_id": org,
                    "stream": stream,
                    "action": action,
                    "actor": actor,
                    "target": target,
                    "context": ctx,
                    "changed_data": changed,
                    "details": details,
                }
                org_rows.append([self.timestamp_ms(), seq, ev])
                seq += 1

            # Seed every hard-value category into distinct events of this org.
            named = [i for i, row in enumerate(org_rows)
                     if row[2]["target"] is not None
                     and "name" in row[2]["target"]]
            used = set()
            for category in HARD_VALUES:
                pool = named if category in TARGET_NAME_ONLY else range(count)
                picks = [i for i in self.rng.sample(pool, HARD_PER_ORG * 4)
                         if i not in used][:HARD_PER_ORG]
                for n, i in enumerate(picks):
                    used.add(i)
                    self.inject(org_rows[i][2], category, n + len(used))
            rows.extend(org_rows)

        # A few deliberate timestamp ties (same org and across orgs).
        for _ in range(12):
            a, b = self.rng.sample(range(len(rows)), 2)
            rows[b][0] = rows[a][0]

        rows.sort(key=lambda row: (row[0], row[1]))
        events = []
        for n, (ms, _seq, ev) in enumerate(rows, start=1):
            out = {"id": n,
                   "organization_id": ev["organization_id"],
                   "occurred_at": format_ms(ms),
                   "stream": ev["stream"],
                   "action": ev["action"],
                   "actor": ev["actor"],
                   "target": ev["target"],
                   "context": ev["context"],
                   "changed_data": ev["changed_data"],
                   "details": ev["details"]}
            events.append(out)
        return events


def format_ms(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output JSONL path (default: fixtures/audit_events.jsonl)")
    args = ap.parse_args()
    events = Gen(SEED).generate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for ev in events:
            f.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
    print(f"wrote {len(events)} events to {args.out}")


if __name__ == "__main__":
    main()
