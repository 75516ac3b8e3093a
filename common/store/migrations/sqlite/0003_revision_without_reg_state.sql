-- The registration state of public identities no longer changes the subscriber's revision: SAR
-- sets it on every registration, and MAR (the revision's reader) never looks at it, so each SAR
-- made the HSS's MAR cache miss on the next registration. UAR, SAR and LIR read the state fresh.
DROP TRIGGER impus_revision_update;

CREATE TRIGGER impus_revision_update AFTER UPDATE OF subscriber_id, impu, position, irs, is_default, barred, profile_id
    ON impus BEGIN
    UPDATE subscriber_revision SET value = value + 1 WHERE id = 1;
    UPDATE subscribers SET revision = (SELECT value FROM subscriber_revision WHERE id = 1) WHERE id IN (OLD.subscriber_id, NEW.subscriber_id);
END;
