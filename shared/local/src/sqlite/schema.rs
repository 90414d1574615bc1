/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE connections (
    tenant_id TEXT PRIMARY KEY,
    body      TEXT NOT NULL
);
CREATE TABLE cursors (
    tenant_id TEXT NOT NULL,
    stream    TEXT NOT NULL,
    revision  INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, stream)
);
CREATE TABLE applied_pages (
    tenant_id TEXT NOT NULL,
    stream    TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream, cycle, page)
) WITHOUT ROWID;
CREATE TABLE leases (
    tenant_id TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    until_ms  INTEGER NOT NULL
);
CREATE TABLE users (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE groups (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE memberships (
    tenant_id TEXT NOT NULL,
    edge      TEXT NOT NULL,
    cycle     INTEGER NOT NULL,
    page      INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, edge)
);
CREATE TABLE runs (
    tenant_id  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    started_at TEXT NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);
"#,
    // 2: idempotency records (idempotency.rs).
    r#"
CREATE TABLE idempotency (
    tenant_id            TEXT NOT NULL,
    key                  TEXT NOT NULL,
    status               TEXT NOT NULL,
    payload_hash         TEXT NOT NULL,
    expires_at_ms        INTEGER NOT NULL,
    in_progress_until_ms INTEGER NOT NULL,
    result               TEXT,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency (expires_at_ms);
"#,
    // 3: the projection's stores (settings.rs, local_users.rs): settings and the host product's users.
    r#"
CREATE TABLE settings (
    tenant_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE TABLE local_users (
    account_id  TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    email       TEXT NOT NULL,
    link_tenant TEXT,
    link_object TEXT,
    body        TEXT NOT NULL,
    PRIMARY KEY (account_id, local_id)
);
CREATE INDEX local_users_email ON local_users (account_id, email);
CREATE INDEX local_users_link ON local_users (link_tenant, link_object);
"#,
    // 4: pending admin consents (consent.rs), taken once by the callback.
    r#"
CREATE TABLE consent_states (
    state      TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL,
    body       TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX consent_states_expiry ON consent_states (expires_ms);
"#,
    // 5: the write half (actions.rs, lookup.rs): actions with their audit trail, workflows with
    // their due list, and the indexes the name lookups need on the mirror's tables. The mirror
    // keeps its rows as JSON and one put path serves users, groups and edges, so the lookups
    // use expression indexes over the JSON instead of extra columns: SQLite keeps them in step
    // on every write, and no writer has to remember them. A query uses such an index only when
    // it repeats the indexed expression exactly (lookup.rs does, and a test checks the
    // query plans).
    r#"
CREATE TABLE actions (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX actions_by_time ON actions (tenant_id, listing_key);
CREATE INDEX actions_by_user ON actions (tenant_id, user_id, listing_key);
CREATE INDEX actions_by_status ON actions (tenant_id, status, listing_key);
CREATE TABLE workflows (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    due_at      TEXT,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workflows_by_time ON workflows (tenant_id, listing_key);
CREATE INDEX workflows_due ON workflows (due_at, tenant_id, id) WHERE due_at IS NOT NULL;
CREATE INDEX users_by_upn ON users
    (tenant_id, lower(json_extract(body, '$.user.user_principal_name')));
CREATE INDEX users_by_mail ON users (tenant_id, lower(json_extract(body, '$.user.mail')));
CREATE INDEX groups_by_name ON groups
    (tenant_id, lower(trim(json_extract(body, '$.group.display_name'), char(32, 9, 10, 11, 12, 13))));
CREATE INDEX memberships_by_member ON memberships (tenant_id, json_extract(body, '$.member.id'));
"#,
    // 6: the HR webhooks (webhooks.rs): endpoints, the delivery log per endpoint, the
    // review list per tenant, the state per HR person, and the mirror's users by employee id.
    r#"
CREATE TABLE hr_endpoints (
    account_id TEXT NOT NULL,
    source     TEXT NOT NULL,
    rev        INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (account_id, source)
);
CREATE TABLE hr_deliveries (
    account_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (account_id, source, id)
);
CREATE INDEX hr_deliveries_by_time ON hr_deliveries (account_id, source, listing_key);
CREATE TABLE hr_reviews (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    open        INTEGER NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX hr_reviews_by_time ON hr_reviews (tenant_id, listing_key);
CREATE INDEX hr_reviews_open ON hr_reviews (tenant_id, open, listing_key);
CREATE TABLE hr_people (
    tenant_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source, provider_id)
);
CREATE INDEX users_by_employee_id ON users
    (tenant_id, lower(trim(json_extract(body, '$.user.employee_id'))));
"#,
    // 7: the outbox (outbox.rs): change events recorded in the transaction of the change they
    // describe, delivered to the event log afterwards and marked delivered.
    r#"
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    body         TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, seq);
"#,
    // 8: outbound webhooks (outbound.rs): the host product's endpoints, and one delivery per
    // (endpoint, event) with its attempts, fanned out from the outbox when it is delivered.
    r#"
CREATE TABLE outbound_endpoints (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    rev        INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX outbound_endpoints_by_account ON outbound_endpoints (account_id, id);
CREATE TABLE outbound_deliveries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    due_ms      INTEGER,
    body        TEXT NOT NULL
);
CREATE INDEX outbound_due ON outbound_deliveries (due_ms) WHERE due_ms IS NOT NULL;
CREATE INDEX outbound_by_endpoint ON outbound_deliveries (endpoint_id, seq);
"#,
    // 9: the outbox without an index on the event id. Its ids are hashes, so every event
    // written touched a random page of that index (a third of a full sync's writes); nothing
    // needs it: a delivery now points at its event by the outbox's `seq`, and an event
    // recorded twice is delivered twice under its one id, which consumers drop. The pending
    // index holds only the pending rows, so marking a row delivered removes its entry.
    r#"
ALTER TABLE outbound_deliveries ADD COLUMN event_seq INTEGER;
UPDATE outbound_deliveries
   SET event_seq = (SELECT seq FROM outbox WHERE outbox.id = outbound_deliveries.event_id);
CREATE TABLE outbox_v9 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL,
    body         TEXT NOT NULL,
    delivered_at TEXT
);
INSERT INTO outbox_v9 (seq, id, body, delivered_at) SELECT seq, id, body, delivered_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v9 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
"#,
];
