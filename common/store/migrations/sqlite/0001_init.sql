-- imslab store schema, SQLite flavour. Keep in step with ../postgres/0001_init.sql.
-- Times are Unix milliseconds; keys are lowercase hex; lists are JSON arrays.

CREATE TABLE service_profiles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- TS 29.228 Annex B CoreNetworkServicesAuthorization/SubscribedMediaProfileId.
    subscribed_media_profile_id INTEGER,
    created_at INTEGER NOT NULL
);

-- Initial filter criteria, TS 29.228 Annex B.2.2.
CREATE TABLE ifcs (
    id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL REFERENCES service_profiles (id) ON DELETE CASCADE,
    priority INTEGER NOT NULL,
    trigger_point TEXT,
    server_name TEXT NOT NULL,
    default_handling INTEGER NOT NULL DEFAULT 0,
    service_info TEXT,
    include_register_request INTEGER NOT NULL DEFAULT 0,
    include_register_response INTEGER NOT NULL DEFAULT 0,
    profile_part_indicator INTEGER,
    UNIQUE (profile_id, priority)
);

CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY,
    imsi TEXT NOT NULL UNIQUE,
    impi TEXT NOT NULL UNIQUE,
    msisdn TEXT,
    k TEXT NOT NULL,
    op TEXT,
    opc TEXT,
    amf TEXT NOT NULL,
    -- The last SQN handed out (SEQ || IND, TS 33.102 Annex C).
    sqn INTEGER NOT NULL DEFAULT 0,
    auth_schemes INTEGER NOT NULL,
    digest_realm TEXT,
    digest_password TEXT,
    digest_ha1 TEXT,
    fixed_scscf TEXT,
    scscf_name TEXT,
    scscf_origin_host TEXT,
    scscf_origin_realm TEXT,
    ccf_primary TEXT,
    ccf_secondary TEXT,
    ecf_primary TEXT,
    ecf_secondary TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (op IS NOT NULL OR opc IS NOT NULL)
);
CREATE INDEX subscribers_msisdn ON subscribers (msisdn);

CREATE TABLE impus (
    id INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    impu TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL,
    irs INTEGER NOT NULL DEFAULT 1,
    is_default INTEGER NOT NULL DEFAULT 0,
    barred INTEGER NOT NULL DEFAULT 0,
    profile_id INTEGER REFERENCES service_profiles (id) ON DELETE SET NULL,
    -- 0 not registered, 1 registered, 2 unregistered (TS 29.228 §6.1.2).
    reg_state INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX impus_subscriber ON impus (subscriber_id);
CREATE UNIQUE INDEX impus_one_default_per_set ON impus (subscriber_id, irs) WHERE is_default;

-- S-CSCF: one row per registered public identity, with the profile from the SAA.
CREATE TABLE scscf_registrations (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    impu TEXT NOT NULL,
    impi TEXT NOT NULL,
    reg_state INTEGER NOT NULL,
    implicit_set TEXT NOT NULL DEFAULT '[]',
    user_data TEXT,
    charging TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner, impu)
);

-- S-CSCF: contact bindings (RFC 3261 §10.3, RFC 5626 instance-id/reg-id).
CREATE TABLE scscf_bindings (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    impu TEXT NOT NULL,
    impi TEXT NOT NULL,
    binding_key TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    q_milli INTEGER,
    path TEXT NOT NULL DEFAULT '[]',
    instance_id TEXT,
    reg_id INTEGER,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    pcscf_flow TEXT,
    received TEXT,
    user_agent TEXT,
    contact_params TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner, impu, binding_key)
);
CREATE INDEX scscf_bindings_expiry ON scscf_bindings (owner, expires_at);

-- P-CSCF: registrations learnt from the 200 OK to REGISTER (TS 24.229 §5.2.2).
CREATE TABLE pcscf_registrations (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    impu TEXT NOT NULL,
    impi TEXT,
    contact TEXT NOT NULL,
    flow TEXT,
    received TEXT,
    service_route TEXT NOT NULL DEFAULT '[]',
    associated_uris TEXT NOT NULL DEFAULT '[]',
    sa_info TEXT,
    call_id TEXT,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner, impu, contact)
);
CREATE INDEX pcscf_registrations_expiry ON pcscf_registrations (owner, expires_at);

-- reg event package dialogs (RFC 3680), on the notifier (S-CSCF) or subscriber (P-CSCF) side.
CREATE TABLE reg_subscriptions (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    role TEXT NOT NULL,
    impu TEXT NOT NULL,
    watcher TEXT NOT NULL,
    call_id TEXT NOT NULL,
    local_tag TEXT NOT NULL,
    remote_tag TEXT NOT NULL,
    local_cseq INTEGER NOT NULL,
    remote_cseq INTEGER NOT NULL,
    remote_target TEXT NOT NULL,
    route_set TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner, call_id, local_tag)
);
CREATE INDEX reg_subscriptions_impu ON reg_subscriptions (owner, impu);

-- The per-UE diagnosis timeline lives in its own file (migrations/sqlite-events), so that
-- its writes never hold the lock Cx needs.
