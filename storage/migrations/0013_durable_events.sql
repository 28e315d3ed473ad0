-- An acknowledged platform event carries what is needed to answer it again: Slack and Teams do
-- not redeliver an event they got a 2xx for, so a replica that dies after the ack would lose the
-- person's message. The payload is written by the same insert that claims the event, before the
-- ack is sent; a claim whose lease ran out (no progress reported) is resumed by any replica.
ALTER TABLE processed_events ADD COLUMN payload jsonb;

-- The sweeper's work list: unfinished events that can be resumed. Finished ones are most rows.
CREATE INDEX processed_events_unfinished ON processed_events (updated_at)
    WHERE status <> 'done' AND payload IS NOT NULL;
