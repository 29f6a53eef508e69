-- A database as lyftr 1.0 left it: its schema exactly as 1.0 created it (no Alembic history,
-- PRAGMA user_version 0), with three messages, their sender counts and search entries.
CREATE TABLE messages (
	message_id VARCHAR NOT NULL, 
	from_msisdn VARCHAR NOT NULL, 
	to_msisdn VARCHAR NOT NULL, 
	ts VARCHAR NOT NULL, 
	ts_key VARCHAR NOT NULL, 
	text TEXT, 
	created_at VARCHAR NOT NULL, 
	PRIMARY KEY (message_id)
);
CREATE INDEX ix_messages_from_ts_key ON messages (from_msisdn, ts_key, message_id);
CREATE INDEX ix_messages_ts_key ON messages (ts_key, message_id);
CREATE TABLE sender_counts (
	from_msisdn VARCHAR NOT NULL, 
	count INTEGER NOT NULL, 
	PRIMARY KEY (from_msisdn)
);
CREATE INDEX ix_sender_counts_rank ON sender_counts (count DESC, from_msisdn);
CREATE VIRTUAL TABLE messages_fts USING fts5(text_folded, tokenize='trigram case_sensitive 1');

INSERT INTO messages VALUES ('old-1', '+919876543210', '+14155550100', '2025-01-15T10:00:00Z', '2025-01-15T10:00:00.', 'Hello from 1.0', '2025-01-15T10:00:01.000Z');
INSERT INTO messages VALUES ('old-2', '+919876543210', '+14155550100', '2025-01-15T09:00:00.25Z', '2025-01-15T09:00:00.25', 'ÉCOLE ouverte', '2025-01-15T10:00:02.000Z');
INSERT INTO messages VALUES ('old-3', '+14155550111', '+14155550100', '2025-01-16T08:00:00Z', '2025-01-16T08:00:00.', NULL, '2025-01-16T08:00:01.000Z');
INSERT INTO sender_counts VALUES ('+919876543210', 2);
INSERT INTO sender_counts VALUES ('+14155550111', 1);
INSERT INTO messages_fts (rowid, text_folded) SELECT rowid, lower(text) FROM messages WHERE message_id = 'old-1';
INSERT INTO messages_fts (rowid, text_folded) SELECT rowid, 'école ouverte' FROM messages WHERE message_id = 'old-2';
