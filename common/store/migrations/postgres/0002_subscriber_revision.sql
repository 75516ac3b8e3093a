-- A subscriber's revision: a new value, from one sequence, whenever anything the HSS reads about
-- it changes (its columns other than sqn, its public identities, the names of their profiles).
-- The SQN handout returns it, so the HSS can keep the subscriber in memory and know, in the same
-- statement that reserves the SQNs, whether what it read is still current.
CREATE SEQUENCE subscriber_revisions;
ALTER TABLE subscribers ADD COLUMN revision BIGINT NOT NULL DEFAULT nextval('subscriber_revisions');

CREATE FUNCTION subscribers_new_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('subscriber_revisions');
    RETURN NEW;
END
$$;

-- Every column but sqn and revision: the SQN handout does not change the revision.
CREATE TRIGGER subscribers_revision BEFORE UPDATE OF imsi, impi, msisdn, k, op, opc, amf, auth_schemes, digest_realm, digest_password, digest_ha1, fixed_scscf, scscf_name, scscf_origin_host, scscf_origin_realm, ccf_primary, ccf_secondary, ecf_primary, ecf_secondary, created_at, updated_at
    ON subscribers FOR EACH ROW EXECUTE FUNCTION subscribers_new_revision();

CREATE FUNCTION impus_new_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE subscribers SET revision = nextval('subscriber_revisions') WHERE id = OLD.subscriber_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE subscribers SET revision = nextval('subscriber_revisions') WHERE id = NEW.subscriber_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER impus_revision AFTER INSERT OR UPDATE OR DELETE ON impus
    FOR EACH ROW EXECUTE FUNCTION impus_new_revision();

CREATE FUNCTION service_profiles_new_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscribers SET revision = nextval('subscriber_revisions')
        WHERE id IN (SELECT subscriber_id FROM impus WHERE profile_id = NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER service_profiles_revision AFTER UPDATE OF name ON service_profiles
    FOR EACH ROW EXECUTE FUNCTION service_profiles_new_revision();
