//! Enumerated AVP values (RFC 6733 §4.3.1: Integer32 with named values) as open newtypes.

open_code!(
    /// Auth-Session-State (RFC 6733 §8.11). Cx always uses NO_STATE_MAINTAINED.
    AuthSessionState(i32) {
        /// The server keeps session state.
        STATE_MAINTAINED = 0;
        /// No session state (all Cx commands).
        NO_STATE_MAINTAINED = 1;
    }
);

open_code!(
    /// Disconnect-Cause in DPR (RFC 6733 §5.4.3).
    DisconnectCause(i32) {
        /// The peer is going down and will come back.
        REBOOTING = 0;
        /// The peer is too busy.
        BUSY = 1;
        /// The peer does not want to talk to us.
        DO_NOT_WANT_TO_TALK_TO_YOU = 2;
    }
);

open_code!(
    /// Server-Assignment-Type (TS 29.229 §6.3.15).
    ServerAssignmentType(i32) {
        /// Only fetch user data.
        NO_ASSIGNMENT = 0;
        /// First registration.
        REGISTRATION = 1;
        /// Re-registration.
        RE_REGISTRATION = 2;
        /// Terminating request for an unregistered user.
        UNREGISTERED_USER = 3;
        /// Registration timed out.
        TIMEOUT_DEREGISTRATION = 4;
        /// The user de-registered.
        USER_DEREGISTRATION = 5;
        /// Timed out, keep the S-CSCF name.
        TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME = 6;
        /// User de-registered, keep the S-CSCF name.
        USER_DEREGISTRATION_STORE_SERVER_NAME = 7;
        /// Network-initiated de-registration.
        ADMINISTRATIVE_DEREGISTRATION = 8;
        /// Authentication failed.
        AUTHENTICATION_FAILURE = 9;
        /// Authentication timed out.
        AUTHENTICATION_TIMEOUT = 10;
        /// De-registration because of too much data.
        DEREGISTRATION_TOO_MUCH_DATA = 11;
        /// AAA user data request.
        AAA_USER_DATA_REQUEST = 12;
        /// P-GW update.
        PGW_UPDATE = 13;
        /// S-CSCF restoration.
        RESTORATION = 14;
    }
);

open_code!(
    /// User-Authorization-Type in UAR/LIR (TS 29.229 §6.3.24).
    UserAuthorizationType(i32) {
        /// Registration or re-registration.
        REGISTRATION = 0;
        /// De-registration.
        DE_REGISTRATION = 1;
        /// Registration, and the I-CSCF wants the S-CSCF capabilities.
        REGISTRATION_AND_CAPABILITIES = 2;
    }
);

open_code!(
    /// User-Data-Already-Available in SAR (TS 29.229 §6.3.26).
    UserDataAlreadyAvailable(i32) {
        /// The S-CSCF needs the user profile.
        USER_DATA_NOT_AVAILABLE = 0;
        /// The S-CSCF already has it.
        USER_DATA_ALREADY_AVAILABLE = 1;
    }
);

open_code!(
    /// Reason-Code in Deregistration-Reason (TS 29.229 §6.3.17).
    ReasonCode(i32) {
        /// The subscription ended.
        PERMANENT_TERMINATION = 0;
        /// Another S-CSCF was assigned.
        NEW_SERVER_ASSIGNED = 1;
        /// Move to another S-CSCF.
        SERVER_CHANGE = 2;
        /// Remove the S-CSCF name.
        REMOVE_S_CSCF = 3;
    }
);

open_code!(
    /// Originating-Request in LIR (TS 29.229 §6.3.34).
    OriginatingRequest(i32) {
        /// Originating side of a session.
        ORIGINATING = 0;
    }
);

open_code!(
    /// Loose-Route-Indication in SAA (TS 29.229 §6.3.45).
    LooseRouteIndication(i32) {
        /// Not required.
        LOOSE_ROUTE_NOT_REQUIRED = 0;
        /// Required.
        LOOSE_ROUTE_REQUIRED = 1;
    }
);

open_code!(
    /// Multiple-Registration-Indication in SAR (TS 29.229 §6.3.51).
    MultipleRegistrationIndication(i32) {
        /// Not a multiple registration.
        NOT_MULTIPLE_REGISTRATION = 0;
        /// A multiple registration.
        MULTIPLE_REGISTRATION = 1;
    }
);

open_code!(
    /// Session-Priority (TS 29.229 §6.3.56); 0 is the highest.
    SessionPriority(i32) {
        /// Highest priority.
        PRIORITY_0 = 0;
        /// Priority 1.
        PRIORITY_1 = 1;
        /// Priority 2.
        PRIORITY_2 = 2;
        /// Priority 3.
        PRIORITY_3 = 3;
        /// Lowest priority.
        PRIORITY_4 = 4;
    }
);

open_code!(
    /// Priviledged-Sender-Indication in SAA (TS 29.229 §6.3.58; spelling as in the spec).
    PriviledgedSenderIndication(i32) {
        /// Not privileged.
        NOT_PRIVILEDGED_SENDER = 0;
        /// Privileged.
        PRIVILEDGED_SENDER = 1;
    }
);
