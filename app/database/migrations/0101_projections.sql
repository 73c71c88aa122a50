-- Projections (contract D9): events a projection failed on after its retries, and the one
-- read model shipped: per agent, how many live goals it has in each status.

CREATE TABLE IF NOT EXISTS projection_dead_letters (
    projection text NOT NULL,
    global_position bigint NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    error text NOT NULL,
    attempts integer NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, global_position)
);

CREATE TABLE IF NOT EXISTS agent_goal_stats (
    agent_id uuid NOT NULL,
    status text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (agent_id, status)
);
