-- A subscriber's revision: a new value, from one counter, whenever anything the HSS reads about
-- it changes (its columns other than sqn, its public identities, the names of their profiles).
-- The SQN handout returns it, so the HSS can keep the subscriber in memory and know, in the same
-- statement that reserves the SQNs, whether what it read is still current.
CREATE TABLE subscriber_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO subscriber_revision (id, value) SELECT 1, COALESCE(MAX(id), 0) FROM subscribers;
ALTER TABLE subscribers ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE subscribers SET revision = id;

CREATE TRIGGER subscribers_revision_insert AFTER INSERT ON subscribers BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id = NEW.id;
END;

-- Every column but sqn and revision: the SQN handout does not change the revision.
CREATE TRIGGER subscribers_revision_update AFTER UPDATE OF imsi, impi, msisdn, k, op, opc, amf, auth_schemes, digest_realm, digest_password, digest_ha1, fixed_scscf, scscf_name, scscf_origin_host, scscf_origin_realm, ccf_primary, ccf_secondary, ecf_primary, ecf_secondary, created_at, updated_at
    ON subscribers BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id = NEW.id;
END;

CREATE TRIGGER impus_revision_insert AFTER INSERT ON impus BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id = NEW.subscriber_id;
END;

CREATE TRIGGER impus_revision_update AFTER UPDATE ON impus BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id IN (OLD.subscriber_id, NEW.subscriber_id);
END;

CREATE TRIGGER impus_revision_delete AFTER DELETE ON impus BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id = OLD.subscriber_id;
END;

CREATE TRIGGER service_profiles_revision AFTER UPDATE OF name ON service_profiles BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1)
        WHERE id IN (SELECT subscriber_id FROM impus WHERE profile_id = NEW.id);
END;
