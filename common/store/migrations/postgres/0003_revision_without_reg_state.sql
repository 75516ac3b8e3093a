-- The registration state of public identities no longer changes the subscriber's revision: SAR
-- sets it on every registration, and MAR (the revision's reader) never looks at it, so each SAR
-- made the HSS's MAR cache miss on the next registration. UAR, SAR and LIR read the state fresh.
DROP TRIGGER impus_revision ON impus;

CREATE TRIGGER impus_revision AFTER INSERT OR DELETE OR UPDATE OF subscriber_id, impu, position, irs, is_default, barred, profile_id
    ON impus FOR EACH ROW EXECUTE FUNCTION impus_new_revision();
