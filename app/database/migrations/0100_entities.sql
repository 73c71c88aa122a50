-- Event-sourced entities (contract D): the immutable events table (also the outbox the
-- relay reads), one table of current state per entity type, and the relay's checkpoints.

-- Drawn only while the transaction holds the events advisory lock, right before commit,
-- so positions become visible in increasing order (D4).
CREATE SEQUENCE IF NOT EXISTS events_global_position_seq AS bigint;

CREATE TABLE IF NOT EXISTS events (
    global_position bigint PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    entity_type text NOT NULL,
    entity_id uuid NOT NULL,
    entity_version integer NOT NULL CHECK (entity_version > 0),
    payload jsonb NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    -- D3: one event per entity version; also serves listing by entity (versions follow
    -- positions within one entity).
    CONSTRAINT events_entity_version UNIQUE (entity_type, entity_id, entity_version)
);
-- Listing by one filter, keyset on the position (D10).
CREATE INDEX IF NOT EXISTS events_by_type ON events (event_type, global_position);
CREATE INDEX IF NOT EXISTS events_by_entity_type ON events (entity_type, global_position);

-- The position each consumer (relay sink, projection) has handled, inclusive.
CREATE TABLE IF NOT EXISTS event_checkpoints (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Entity tables: id, version, created_at, updated_at, deleted_at (the tombstone, D5), then
-- the fields of the entity's model (app/entities/catalog.py), JSON fields as jsonb.
CREATE TABLE IF NOT EXISTS agents (
    id uuid PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    name text NOT NULL,
    agent_type text NOT NULL,
    status text NOT NULL,
    capabilities jsonb NOT NULL,
    configuration jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS agents_listing ON agents (created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS goals (
    id uuid PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    agent_id uuid NOT NULL REFERENCES agents (id),
    description text NOT NULL,
    priority bigint NOT NULL,
    status text NOT NULL,
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS goals_listing ON goals (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS goals_by_agent_id
    ON goals (agent_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS plans (
    id uuid PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    goal_id uuid NOT NULL REFERENCES goals (id),
    name text NOT NULL,
    description text NOT NULL,
    status text NOT NULL,
    steps jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_listing ON plans (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS plans_by_goal_id
    ON plans (goal_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS tasks (
    id uuid PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    plan_id uuid NOT NULL REFERENCES plans (id),
    name text NOT NULL,
    status text NOT NULL,
    input jsonb NOT NULL,
    output jsonb
);
CREATE INDEX IF NOT EXISTS tasks_listing ON tasks (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS tasks_by_plan_id
    ON tasks (plan_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS documents (
    id uuid PRIMARY KEY,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    title text NOT NULL,
    content text NOT NULL,
    metadata jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_listing
    ON documents (created_at, id) WHERE deleted_at IS NULL;
